/* api/metrics: the server's Prometheus metrics (GET /metrics, text exposition format 0.0.4) and
 * the request log. Counters and histograms of finished requests live here, process-wide, under
 * one mutex (requests by route, API and status; tokens, time to first token, time per output
 * token and duration by model or route); gauges (models, slots, queue, KV cache, prompt cache,
 * engine processes, GPU layers, resident memory) are read from the registry at scrape time.
 * Label sets are bounded: routes come from the route table, models from the registry
 * (LIM_METRICS_MODELS), statuses are HTTP codes.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef SHIMMY_API_METRICS_H
#define SHIMMY_API_METRICS_H

#include "api/api.h"
#include "core/buf.h"
#include "core/limits.h"

/* Counts one finished request (borrows d). */
void metrics_record(const http_done *d);
/* Appends the exposition text (counters, histograms, gauges from app's registry) to out.
 * Errors: those of buf (ERR_TOO_LARGE, ERR_NOMEM). */
shimmy_err metrics_render(shimmy_app *app, buf *out);

/* GET /metrics. */
void api_handle_metrics(const http_request *req, http_response *res);

#endif
