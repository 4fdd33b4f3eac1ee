/* limits: every limit of shimmy in one place, each with the reason for its value. */
#ifndef SHIMMY_LIMITS_H
#define SHIMMY_LIMITS_H

/* Largest request body: 1000 long chat messages fit; anything larger is a mistake or abuse. */
#define LIM_BODY_BYTES (8u * 1024u * 1024u)
/* Body accepted by GET routes (they ignore it; a client should send none). */
#define LIM_GET_BODY_BYTES 4096u
/* JSON nesting depth accepted from clients (jansson parses recursively). */
#define LIM_JSON_DEPTH 64
/* Largest GBNF grammar made from a client's JSON schema: llama.cpp parses it, and copies it into
 * a sampler, for every request that carries it. */
#define LIM_GRAMMAR_BYTES (256u * 1024u)
/* Largest minItems/maxItems/minLength/maxLength a schema may give: llama.cpp's grammar parser
 * writes out one rule per repetition and refuses 2000 or more. */
#define LIM_SCHEMA_REPEAT 1000
/* Largest chat template file (--chat-template-file): the biggest template in llama.cpp's set is
 * under 64 KiB. */
#define LIM_TEMPLATE_BYTES (1u << 20)
/* a --config file (presets): far more than any hand-written one, small enough to read at once */
#define LIM_CONFIG_BYTES (1u << 20)
/* preset sections in a --config file (each is matched against a request's model name) */
#define LIM_PRESETS 256
/* Host-RAM prompt cache per loaded model, MiB (--cache-ram): holds the KV state of conversations
 * evicted from their slot so that their next turn does not recompute them. llama-server defaults
 * to 8192; half of that keeps two loaded models (the default --max-loaded) within 8 GiB on a
 * 16 GiB machine, and it is only ever filled by states actually used. */
#define LIM_CACHE_RAM_MIB 4096
/* Loads in a row whose engine process dies (a model file that aborts llama.cpp) before the
 * model is marked failed until a rescan: a crash loop costs a few seconds, not forever. */
#define LIM_LOAD_CRASHES 3
/* How old a model's status (slots busy, queue, cache) may be when /health, /metrics or the
 * registry read it from its engine process while none of its jobs moved (a job's frame makes it
 * stale at once): without it, each status page is a round trip to every engine process. */
#define LIM_INFO_CACHE_MS 100
/* Bytes of a served model name with its NUL: the longest store name ("registry/namespace/
 * model:tag", "org/name/file-stem") fits, and a name is echoed in every response. */
#define LIM_MODEL_NAME 256
/* Messages in one chat request. */
#define LIM_MESSAGES 4096
/* Stop strings per request (OpenAI allows 4; we are more generous). */
#define LIM_STOP_STRINGS 16
/* Longest stop string in bytes: a stop string is held back while it might match. */
#define LIM_STOP_BYTES 256
/* Longest rendered prompt in bytes before tokenization. */
#define LIM_PROMPT_BYTES (8u * 1024u * 1024u)
/* Largest max_tokens accepted; the context limit usually ends generation first. */
#define LIM_MAX_TOKENS 1048576
/* Choices per request (OpenAI's n): each is a job of its own that takes a slot or queues, so
 * one request cannot fill a model's queue (LIM_QUEUE_DEPTH) alone. */
#define LIM_N 16
/* Alternatives per generated token (top_logprobs), OpenAI's limit. */
#define LIM_TOP_LOGPROBS 20
/* Slots per model: each costs one KV sequence. */
#define LIM_PARALLEL 64
/* Requests waiting for a slot per model; past this the server answers 503. */
#define LIM_QUEUE_DEPTH 64
/* Concurrent HTTP connections (one thread each). At the limit a new connection closes the least
 * recently used idle one (no request in flight), so idle keep-alive connections cannot lock
 * anyone out; it is refused only when every connection has a request in flight. */
#define LIM_CONNECTIONS 512
/* Connections from one IP address (every local process shares 127.0.0.1: same eviction rule). */
#define LIM_CONNECTIONS_PER_IP 256
/* Connections libmicrohttpd may hold past LIM_CONNECTIONS while evicted ones are closing. */
#define LIM_CONNECTIONS_SLACK 64
/* Seconds a connection may stay silent on the wire (idle keep-alive, a stalled request head or
 * body) before it is closed; time spent generating never counts. Clients keep idle connections
 * for 4-5 s (Node, Python httpx), so this rarely closes one they still want. */
#define LIM_IDLE_TIMEOUT_S 10
/* Seconds a client is told to wait after a 503. */
#define LIM_RETRY_AFTER_S 1
/* Most text buffered for one response, in bytes (a runaway client cannot exhaust memory). */
#define LIM_RESPONSE_BYTES (64u * 1024u * 1024u)
/* Responses kept by the OpenAI Responses API's store (store: true) for GET and
 * previous_response_id, least recently used dropped first: an agent session continues its last
 * response, so a thousand covers many concurrent sessions (SHIMMY_RESPONSES_MAX lowers it). */
#define LIM_RESP_STORE_COUNT 1024
/* Bytes of JSON text that store holds (responses and their conversations): a long agent
 * conversation is a few MiB, and the store must not grow a server's memory without bound. */
#define LIM_RESP_STORE_BYTES (256u * 1024u * 1024u)
/* Images and audio clips in one request: each is decoded and encoded by the projector before
 * the prompt can start (a few hundred ms to seconds apiece on a CPU); llama-server sets none,
 * Anthropic allows 100 per request, 16 keeps one request from holding a model for minutes. */
#define LIM_MEDIA_PARTS 16
/* Bytes of one image or audio file after base64 decoding (or fetched): a 12-megapixel phone
 * JPEG is 2-5 MiB and a minute of 16-bit 16 kHz WAV 2 MiB; a request body (LIM_BODY_BYTES) holds
 * one such file as base64 with room for the text. */
#define LIM_MEDIA_BYTES (6u * 1024u * 1024u)
/* Pixels of one decoded image: 4096 x 4096 is 48 MiB of RGB before the projector scales it down
 * to its own size (a megapixel or two at most); a small PNG can claim far more (decompression
 * bombs), so this is checked before the pixels are decoded. */
#define LIM_MEDIA_PIXELS (4096u * 4096u)
/* Seconds a remote image URL (--allow-remote-media) may take to download, in all. */
#define LIM_MEDIA_FETCH_S 10
/* Redirects a remote image URL may take (to http(s) only): image hosts and CDNs redirect once or
 * twice; more is a loop. */
#define LIM_MEDIA_REDIRECTS 5

/* Tokens per llama_decode step (prompt chunks plus one token per generating slot). */
#define LIM_BATCH_TOKENS 512
/* Speculative decoding: tokens one slot's draft may propose per step (a per-slot buffer made at
 * load; llama-server's largest n-gram draft default, 48, fits). */
#define LIM_DRAFT_TOKENS 64
/* Draft-model tokens per step unless --draft-max: llama-server's default (--spec-draft-n-max). */
#define LIM_DRAFT_MAX_DEFAULT 3
/* ngram-simple's lookup n-gram and proposed m-gram, unless set: llama-server's defaults
 * (--spec-ngram-simple-size-n/-m). */
#define LIM_NGRAM_N_DEFAULT 12
#define LIM_NGRAM_M_DEFAULT 48
/* Default and cap of the per-slot context when the model's trained context is larger. */
#define LIM_DEFAULT_CTX 4096
/* Smallest --ctx: a chat template's own tokens plus a short answer need about that many. */
#define LIM_MIN_CTX 16
/* Largest --ctx, per slot: the longest trained context of today's models (1M tokens). */
#define LIM_MAX_CTX (1 << 20)
/* Models that can be named on the command line. */
#define LIM_MODELS 256
/* Models one registry knows (a scan of a huge store stops there, with a warning). */
#define LIM_REGISTRY_MODELS 4096
/* Folder depth a model store scan descends (HF snapshots sit 4 deep, Ollama manifests 5). */
#define LIM_SCAN_DEPTH 8
/* Directory entries one discovery pass looks at: a home folder full of junk cannot stall it. */
#define LIM_SCAN_ENTRIES 200000
/* Milliseconds between checks for a vanished client while waiting for tokens. */
#define LIM_DISCONNECT_POLL_MS 50
/* Milliseconds of silence in a stream (a long prompt) before a keep-alive frame (Anthropic's
 * ping): proxies and clients with read timeouts keep the connection. */
#define LIM_STREAM_IDLE_MS 5000
/* Default --drain-timeout: seconds SIGTERM lets running requests finish. Kubernetes waits 30 s
 * (terminationGracePeriodSeconds) before SIGKILL; we end answers a little before that. */
#define LIM_DRAIN_TIMEOUT_S 25
/* Milliseconds the requests still running at the drain timeout get to write their closing
 * error frame before the server stops anyway. */
#define LIM_DRAIN_CANCEL_MS 2000
/* Milliseconds a request that ends early (the client hung up or cancelled) waits for the engine
 * to confirm its job stopped, so the slot is free once the client hears of the end. A step is
 * milliseconds; this only bounds a stuck engine. */
#define LIM_CANCEL_CONFIRM_MS 2000

/* ---- defaults ---- */

/* LIM_STR(LIM_X): a numeric limit as a string literal (defaults given as text). */
#define LIM_STR_(x) #x
#define LIM_STR(x) LIM_STR_(x)

/* Address serve binds by default: loopback, so that nothing is reachable from other machines
 * until the operator says so (docs/SECURITY.md). */
#define LIM_DEFAULT_HOST "127.0.0.1"
/* Port serve listens on (and run and init assume): Ollama's 11434 plus one, so that both can
 * run side by side. */
#define LIM_DEFAULT_PORT 11435
/* Last port `--bind auto` tries: a hundred ports cover every server one machine runs. */
#define LIM_AUTO_PORT_LAST 11535
/* Slots per model when neither --parallel nor a model's setting names one: llama-server's
 * default; four conversations at once at the cost of four KV sequences. */
#define LIM_DEFAULT_PARALLEL 4
/* Models kept loaded at once (--max-loaded): a chat model and an embedding model, the common
 * pair, fit on a 16 GiB machine. */
#define LIM_DEFAULT_MAX_LOADED 2

/* ---- HTTP and trust ---- */

/* Bytes past a route's max_body that we read and drop before cutting the connection. Reading
 * the rest of a modestly oversized body lets a client that sends it regardless (no "Expect:
 * 100-continue") read its 413 cleanly; closing with unread bytes would reset the connection and
 * can destroy the answer. Bounded, so that nobody uploads forever. */
#define LIM_DISCARD_BYTES (1024u * 1024u)
/* Longest Access-Control-Request-Headers value echoed back in a preflight answer: the headers
 * browsers send fit many times over. */
#define LIM_CORS_HEADERS_BYTES 1024
/* Longest error message of a refusal: one sentence naming the flag to change. */
#define LIM_REFUSAL_MSG_BYTES 400
/* Longest Origin we echo back (scheme, a DNS name of at most 253 bytes, a port). */
#define LIM_ORIGIN_BYTES 256
/* Longest X-Request-Id kept from a client (longer or odd ones are replaced by our own): a UUID
 * or a trace id fits; a log line stays one line. */
#define LIM_REQUEST_ID_BYTES 64
/* Longest host name we look at (DNS names are at most 253 bytes). */
#define LIM_HOST_BYTES 256
/* Longest line of a keys file (--api-key-file): a key of any provider's format fits. */
#define LIM_KEY_LINE_BYTES 4096
/* Values of one repeatable trust flag (--api-key, --cors-origin, --allowed-host): a hand-written
 * list. The keys of --api-key-file count against it too (a file with more is refused). */
#define LIM_TRUST_VALUES 64

/* ---- API ---- */

/* Buckets of one Prometheus histogram: the widest (request duration) has 14. */
#define LIM_METRICS_BUCKETS 16
/* Distinct (route, api, status) and route rows kept; past them requests count under
 * route="other": the route table and a handful of statuses stay far below. */
#define LIM_METRICS_REQ_ROWS 256
/* Distinct model rows kept; past them under model="other": bounds the series a store of many
 * models can make. */
#define LIM_METRICS_MODELS 64
/* WebSocket requests that may wait behind the one in progress: a client pipelines a few; more
 * is a client that does not read. */
#define LIM_WS_QUEUE 16
/* Longest WebSocket wait on the socket when nothing runs, between checks that it is still
 * open: a second is unnoticeable for a closed socket and costs nothing. */
#define LIM_WS_IDLE_POLL_MS 1000
/* A WebSocket client that reads nothing for this long while we write is gone. */
#define LIM_WS_SEND_TIMEOUT_S 30
/* Ollama's text layers (template, system, params, license) and the Modelfile text of
 * /api/show: small text; a bigger one is cut. */
#define LIM_LAYER_BYTES (1u << 20)
/* An MLX folder's config.json read for its model type and bits: real ones are a few KiB. */
#define LIM_MLX_CONFIG_BYTES (1u << 20)

/* ---- CLI ---- */

/* Most bytes of piped input `shimmy run` takes as the prompt. */
#define LIM_RUN_STDIN_BYTES (1u << 20)
/* Seconds `shimmy run` waits for a running server's /health before loading the model itself:
 * a local server answers in milliseconds. */
#define LIM_RUN_PROBE_S 2
/* A file `shimmy init` writes: the templates are a few KiB. */
#define LIM_INIT_FILE_BYTES (1u << 20)

/* ---- engine processes and logs ---- */

/* Largest payload either side of an engine process pipe accepts: a request body
 * (LIM_BODY_BYTES), or the events of one wait, with room to spare. */
#define LIM_IPC_PAYLOAD_BYTES (64u << 20)
/* Read buffer of each end of an engine process channel: an engine step's frames for every slot
 * (a few hundred bytes each) in one read; larger payloads pass through it in pieces. */
#define LIM_IPC_READ_BYTES (64u << 10)
/* With jobs running, how long a model's channel may go unread (their threads all busy writing
 * to their clients) before its reader thread reads it for them (engine/remote.c): short enough
 * that an engine process never waits on a full channel for long, long enough that the reader
 * thread wakes about 100 times a second at most while a stream reads its own frames. Also the
 * channel's SO_RCVTIMEO: how long a waiting thread's read blocks before it looks at its own
 * deadline again. */
#define LIM_IPC_LEAD_LAPSE_MS 10
/* How long an engine process keeps a worker thread (a submit's or a call's) for the next task:
 * a request does not pay for a thread's start and end, an idle process drops its workers. */
#define LIM_ENGINE_WORKER_IDLE_S 60
/* How long serve waits for the first engine process to load the backend modules and check the
 * GPU choices before it reports the start-up failed: CUDA or Vulkan initialisation takes seconds
 * on a machine with many devices; a driver that hangs must not hang the start-up forever. */
#define LIM_ENGINE_CHECK_S 120
/* How long after serve is ready, or after a model load took the warm engine process, the next
 * warm one starts (its exec and backend module, about 15 ms of CPU): not during the requests
 * that follow at once, which it would slow on a small machine. A load within this time starts
 * its own process (+10-20 ms to that load). */
#define LIM_WARM_REFILL_DELAY_MS 2000
/* Cancels an engine process keeps for jobs whose submit thread has not registered them yet
 * (a race of a few microseconds; more than this at once means a broken client). */
#define LIM_EARLY_CANCELS 64
/* Last lines of an engine process's stderr kept to explain its death. */
#define LIM_ENGINE_LOG_LINES 8
/* Longest log line, bytes: a longer one is cut. */
#define LIM_LOG_LINE_BYTES 4096

/* ---- GPU ---- */

/* Devices one model may use: llama.cpp's own limit (llama_max_devices()). */
#define LIM_GPU_DEVICES 16
/* Backend modules (libggml-*.so) looked at in the library folder: a release ships under ten. */
#define LIM_GPU_MODULES 64
/* Milliseconds to reach an RPC server before calling it unreachable: a LAN answers in well
 * under one; ggml itself would abort the process on a refused connection. */
#define LIM_RPC_CONNECT_MS 3000
/* Most repeating layers a model may have here (the largest public models have under 200). */
#define LIM_FIT_LAYERS 1024
/* Safety margin kept free on every device: the larger of LIM_FIT_MARGIN_BYTES bytes (driver and
 * runtime allocations that free memory does not show yet) and LIM_FIT_MARGIN_PCT % of its free
 * memory (fragmentation, other processes). */
#define LIM_FIT_MARGIN_BYTES (256ull << 20)
#define LIM_FIT_MARGIN_PCT 5
/* Slots of the hash set of tensors seen while reading back where a model's weights went: a
 * power of two; a model with 1000 layers has about 15000 tensors. */
#define LIM_PLACE_SEEN_SLOTS 65536
/* shimmy pull: seconds to connect to a hub or registry (a dead mirror fails fast). */
#define LIM_PULL_CONNECT_S 30
/* shimmy pull: seconds a transfer may receive nothing before it is called broken (and resumed
 * by the next pull); a slow link still moves some bytes every minute. */
#define LIM_PULL_STALL_S 60
/* shimmy pull: seconds for one metadata request (a file list, a manifest, a HEAD). */
#define LIM_PULL_META_TIMEOUT_S 120
/* shimmy pull: milliseconds between progress reports of a transfer (a bar, /api/pull lines). */
#define LIM_PULL_PROGRESS_MS 200
/* DELETE /api/delete: milliseconds it waits for the deleted model's last request to release it
 * before the rescan drops it from the list (a generation still running keeps it longer). */
#define LIM_DELETE_WAIT_MS 2000
/* shimmy pull: files one Hugging Face pull fetches (split parts and a projector): llama.cpp's
 * splits of the largest models have a few dozen parts. */
#define LIM_PULL_FILES 64

#endif
