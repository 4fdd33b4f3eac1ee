#!/usr/bin/env bash
# fixtures.sh: writes the generated test models into BUILD/fixtures (make fixtures).
#   reranker.gguf  a random-weight BERT reranker (pooling rank) with bge's real WordPiece
#                  vocabulary (tools/gen_reranker.c; seeded: the same bytes every time)
#   vision-model.gguf   a random-weight llama text model (2 layers, 64 wide, f32) with
#                       llama.cpp's Llama SPM vocabulary and a ChatML template (tools/gen_model.c)
#   vision-mmproj.gguf  its LLaVA-style projector (tools/gen_vision.c): 28x28 images, 4 tokens
#                       each; both seeded
#   audio-mmproj.gguf   an audio projector for the same model (gen_vision --audio: Qwen2-Audio's
#                       type, a Whisper encoder over 16 mel bins; 750 tokens per clip)
#   qwen2vl-model.gguf  the same shape as Qwen2-VL's text model (gen_model --arch qwen2vl: M-RoPE,
#                       rope.dimension_sections 2/3/3; query and key weights at 0.3 so that
#                       positions move the answer), same vocabulary and template
#   qwen2vl-mmproj.gguf its Qwen2-VL projector (gen_vision --qwen2vl): images resized to
#                       multiples of 28 pixels, at least 8 tokens, nx x ny tokens at max(nx, ny)
#                       positions (32x32 -> 3x3 at 3, 40x20 -> 4x2 at 4)
#   pattern.png, pattern.jpg, checker.gif, stripes.bmp, huge.png, tone.wav, tone.mp3
#                       test images and a clip, copied from tests/data/vision (tools/gen_images.sh)
# Usage: tools/fixtures.sh BUILD_DIR      (BUILD_DIR/tools/gen_reranker must be built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tools/fixtures.sh BUILD_DIR}
vocab=$root/deps/llama.cpp/models/ggml-vocab-bert-bge.gguf
[ -f "$vocab" ] || "$root/scripts/deps.sh" --source-only
mkdir -p "$build/fixtures"
"$build/tools/gen_reranker" "$build/fixtures/reranker.gguf" --vocab-from "$vocab"
echo "fixtures.sh: $build/fixtures/reranker.gguf"
chatml='{% for message in messages %}{{ '"'"'<|im_start|>'"'"' + message['"'"'role'"'"'] + '"'"'\n'"'"' + message['"'"'content'"'"'] + '"'"'<|im_end|>\n'"'"' }}{% endfor %}{% if add_generation_prompt %}{{ '"'"'<|im_start|>assistant\n'"'"' }}{% endif %}'
"$build/tools/gen_model" "$build/fixtures/vision-model.gguf" \
    --vocab-from "$root/deps/llama.cpp/models/ggml-vocab-llama-spm.gguf" --layers 2 --embd 64 \
    --ff 128 --heads 4 --kv-heads 4 --ctx 2048 --type f32 --seed 2 --chat-template "$chatml"
"$build/tools/gen_vision" "$build/fixtures/vision-mmproj.gguf" --text-embd 64 --seed 2
"$build/tools/gen_vision" "$build/fixtures/audio-mmproj.gguf" --audio --text-embd 64 --seed 2
"$build/tools/gen_model" "$build/fixtures/qwen2vl-model.gguf" \
    --vocab-from "$root/deps/llama.cpp/models/ggml-vocab-llama-spm.gguf" --layers 2 --embd 64 \
    --ff 128 --heads 4 --kv-heads 4 --ctx 2048 --type f32 --seed 2 --chat-template "$chatml" \
    --arch qwen2vl --qk-scale 0.3
"$build/tools/gen_vision" "$build/fixtures/qwen2vl-mmproj.gguf" --qwen2vl --text-embd 64 --seed 2
cp "$root"/tests/data/vision/* "$build/fixtures/"
echo "fixtures.sh: $build/fixtures/vision-model.gguf, vision-mmproj.gguf, audio-mmproj.gguf," \
    "qwen2vl-model.gguf, qwen2vl-mmproj.gguf and test images"
