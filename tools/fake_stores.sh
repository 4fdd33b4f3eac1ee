#!/usr/bin/env bash
# fake_stores.sh: builds Hugging Face, Ollama and LM Studio model stores in a home folder from
# the test models, laid out exactly as those tools lay them out (HF: blobs named by sha256 and
# snapshot symlinks; Ollama: real manifests whose layer digests are the sha256 of the blobs), plus
# the files discovery must refuse (adapters without a base, projectors, vocab-only, truncated,
# GGUF v1, a manifest without a model layer, later parts of a split model), and MLX model folders
# (config.json + *.safetensors: listed, never served; the weights are a few fake bytes).
# Projectors (mmproj) are paired with the models beside them: they carry the metadata discovery
# reads (tools/gguf_gen --type mmproj) and no real encoder, so a model paired with one loads
# text-only at best; tests load none of those models.
#
#   tools/fake_stores.sh HOME_DIR [MODELS_DIR] [TOOLS_DIR]
set -euo pipefail
home=${1:?usage: fake_stores.sh HOME_DIR [MODELS_DIR] [TOOLS_DIR]}
models=${2:-$(dirname "$0")/../../shared/models}
tools=${3:-$(dirname "$0")/../build/tools}
stories=$models/stories260K.gguf
tiny=$models/llama-2-tiny-random.gguf
v1=$models/stories260K-ggufv1.gguf
for f in "$stories" "$tiny" "$v1" "$tools/gguf_gen" "$tools/gguf_split_gen" "$tools/lora_gen"; do
    [ -e "$f" ] || { echo "fake_stores.sh: missing $f" >&2; exit 1; }
done
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- Hugging Face hub cache: ~/.cache/huggingface/hub ----
hub=$home/.cache/huggingface/hub
hf_repo() { # ORG NAME REV FILE SRC: one file of a snapshot, a symlink into blobs/
    local dir=$hub/models--$1--$2 rev=$3 file=$4 src=$5 h
    h=$(sha "$src")
    mkdir -p "$dir/blobs" "$dir/refs" "$dir/snapshots/$rev/$(dirname "$file")"
    [ -e "$dir/blobs/$h" ] || cp "$src" "$dir/blobs/$h"
    local up; up=$(echo "$file" | sed 's|[^/]*/|../|g; s|[^/]*$||')
    ln -sfn "../../${up}blobs/$h" "$dir/snapshots/$rev/$file"
}
hf_repo TheBloke Stories-260K-GGUF 1111aaaa stories260K.gguf "$stories"
echo -n 1111aaaa > "$hub/models--TheBloke--Stories-260K-GGUF/refs/main"
hf_repo TheBloke Stories-260K-GGUF 0000old0 stories-old.gguf "$tiny"     # not refs/main: not served
touch -d '2020-01-01' "$hub/models--TheBloke--Stories-260K-GGUF/snapshots/0000old0"
hf_repo TheBloke Stories-260K-GGUF 1111aaaa README.md "$models/README.md"
hf_repo Org Tiny-Vision-GGUF 2222bbbb tiny-q8.gguf "$tiny"
# projectors: not models; the one of the model's width (8) pairs, the other never does
"$tools/gguf_gen" "$home/mmproj.tmp" --type mmproj --arch clip --file-type 1 --proj-dim 8 >/dev/null
hf_repo Org Tiny-Vision-GGUF 2222bbbb mmproj-tiny-f16.gguf "$home/mmproj.tmp"
"$tools/gguf_gen" "$home/mmproj.tmp" --type mmproj --arch clip --file-type 7 --proj-dim 4096 >/dev/null
hf_repo Org Tiny-Vision-GGUF 2222bbbb mmproj-big-q8_0.gguf "$home/mmproj.tmp"
"$tools/gguf_split_gen" "$stories" "$home/split.tmp" 2 >/dev/null
hf_repo Org Split-GGUF 3333cccc Q8_0/stories-split-00001-of-00002.gguf "$home/split.tmp-00001-of-00002.gguf"
hf_repo Org Split-GGUF 3333cccc Q8_0/stories-split-00002-of-00002.gguf "$home/split.tmp-00002-of-00002.gguf"
# a projector at the snapshot's top serves the model in its Q8_0/ subfolder
"$tools/gguf_gen" "$home/mmproj.tmp" --type mmproj --arch clip --file-type 1 --proj-dim 64 >/dev/null
hf_repo Org Split-GGUF 3333cccc mmproj-stories-f16.gguf "$home/mmproj.tmp"
rm -f "$home"/split.tmp-* "$home/mmproj.tmp"
mkdir -p "$hub/datasets--Org--Data/snapshots/x"                         # not a model repo
mlx=$(mktemp -d)                                                          # MLX: listed, not served
echo '{"model_type":"llama","quantization":{"group_size":64,"bits":4}}' > "$mlx/config.json"
head -c 4096 /dev/zero > "$mlx/model.safetensors"
hf_repo mlx-community Tiny-4bit 4444dddd config.json "$mlx/config.json"
hf_repo mlx-community Tiny-4bit 4444dddd model.safetensors "$mlx/model.safetensors"
echo -n 4444dddd > "$hub/models--mlx-community--Tiny-4bit/refs/main"

# ---- Ollama: ~/.ollama/models ----
om=$home/.ollama/models
mkdir -p "$om/blobs"
blob() { # SRC MEDIATYPE → prints a layer object, copies SRC into blobs/sha256-HEX
    local h size; h=$(sha "$1"); size=$(stat -c %s "$1")
    [ -e "$om/blobs/sha256-$h" ] || cp "$1" "$om/blobs/sha256-$h"
    printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$2" "$h" "$size"
}
manifest() { # REGISTRY NS MODEL TAG LAYER...
    local dir=$om/manifests/$1/$2/$3 tag=$4; shift 4
    mkdir -p "$dir"
    local cfg layers; cfg=$(mktemp); echo '{"model_format":"gguf","model_family":"llama"}' > "$cfg"
    layers=$(IFS=,; echo "$*")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":%s,"layers":[%s]}' \
        "$(blob "$cfg" application/vnd.docker.container.image.v1+json)" "$layers" > "$dir/$tag"
    rm -f "$cfg"
}
tmp=$(mktemp -d)
echo '{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>' > "$tmp/template"
echo 'You are a storyteller.' > "$tmp/system"
echo '{"stop":["<|user|>"],"temperature":0.7,"num_ctx":512}' > "$tmp/params"
echo 'MIT' > "$tmp/license"
M=application/vnd.ollama.image
manifest registry.ollama.ai library stories 260k "$(blob "$stories" $M.model)" \
    "$(blob "$tmp/template" $M.template)" "$(blob "$tmp/system" $M.system)" \
    "$(blob "$tmp/params" $M.params)" "$(blob "$tmp/license" $M.license)"
manifest registry.ollama.ai library stories latest "$(blob "$stories" $M.model)"  # same blob: once
manifest registry.ollama.ai someuser tiny q8 "$(blob "$tiny" $M.model)"
"$tools/gguf_gen" "$tmp/other.gguf" --copy-from "$stories" --name "other copy" >/dev/null
manifest hf.co bartowski Other-GGUF Q8_0 "$(blob "$tmp/other.gguf" $M.model)"
"$tools/lora_gen" "$stories" "$tmp/lora.gguf" >/dev/null
manifest registry.ollama.ai library stories lora "$(blob "$stories" $M.model)" \
    "$(blob "$tmp/lora.gguf" $M.adapter)"                                  # FROM stories + ADAPTER
manifest registry.ollama.ai library broken latest "$(blob "$tmp/template" $M.template)"  # no model
"$tools/gguf_gen" "$tmp/mmproj.gguf" --type mmproj --arch clip --file-type 1 --proj-dim 8 >/dev/null
manifest registry.ollama.ai library vision tiny "$(blob "$tiny" $M.model)" \
    "$(blob "$tmp/mmproj.gguf" $M.projector)"                              # model + projector layer
manifest registry.ollama.ai library vision broken "$(blob "$tiny" $M.model)" \
    "$(blob "$tmp/template" $M.projector)"                                 # not a projector: text
rm -rf "$tmp"

# ---- LM Studio: ~/.lmstudio/models and ~/.cache/lm-studio/models ----
lms=$home/.lmstudio/models
mkdir -p "$lms/lmstudio-community/Tiny-GGUF" "$lms/Pub/Broken-GGUF" "$lms/.hidden/X"
cp "$tiny" "$lms/lmstudio-community/Tiny-GGUF/Tiny-Random-F16.gguf"
"$tools/gguf_gen" "$lms/lmstudio-community/Tiny-GGUF/mmproj-Tiny-F16.gguf" --type mmproj --arch clip \
    --file-type 1 --proj-dim 8 --modality both >/dev/null                  # images and audio
"$tools/gguf_gen" "$lms/Pub/Broken-GGUF/vocab-only.gguf" --no-tensors >/dev/null
head -c 600000 "$stories" > "$lms/Pub/Broken-GGUF/truncated.gguf"
cp "$v1" "$lms/Pub/Broken-GGUF/old-v1.gguf"
echo "not a gguf" > "$lms/Pub/Broken-GGUF/notes.gguf"
"$tools/gguf_gen" "$lms/Pub/Broken-GGUF/orphan-lora.gguf" --type adapter >/dev/null
cp "$stories" "$lms/.hidden/X/hidden.gguf"
ln -sfn "$hub/models--TheBloke--Stories-260K-GGUF/snapshots/1111aaaa/stories260K.gguf" \
    "$lms/Pub/Broken-GGUF/same-as-hf.gguf"                                  # duplicate file: once
ln -sfn "$lms" "$lms/Pub/loop"                                              # symlink loop
mkdir -p "$lms/Pub/Stories-LoRA-GGUF"                                     # adapter beside its base
cp "$stories" "$lms/Pub/Stories-LoRA-GGUF/stories260K.gguf"
"$tools/lora_gen" "$stories" "$lms/Pub/Stories-LoRA-GGUF/stories260K-lora-F32.gguf" >/dev/null
mkdir -p "$lms/mlx-community/Qwen-Tiny-MLX"                               # MLX: listed, not served
echo '{"model_type":"qwen2"}' > "$lms/mlx-community/Qwen-Tiny-MLX/config.json"
for k in 1 2; do
    head -c 2048 /dev/zero > "$lms/mlx-community/Qwen-Tiny-MLX/model-0000$k-of-00002.safetensors"
done
rm -rf "$mlx"
mkdir -p "$home/.cache/lm-studio/models/Old/Repo"
cp "$stories" "$home/.cache/lm-studio/models/Old/Repo/Stories.gguf"
echo "fake stores in $home"
