#!/usr/bin/env bash
# fixtures.sh: writes the generated test models into BUILD/fixtures (make fixtures).
#   reranker.gguf  a random-weight BERT reranker (pooling rank) with bge's real WordPiece
#                  vocabulary (tools/gen_reranker.c; seeded: the same bytes every time)
# Usage: tools/fixtures.sh BUILD_DIR      (BUILD_DIR/tools/gen_reranker must be built)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: tools/fixtures.sh BUILD_DIR}
vocab=$root/deps/llama.cpp/models/ggml-vocab-bert-bge.gguf
[ -f "$vocab" ] || "$root/scripts/deps.sh" --source-only
mkdir -p "$build/fixtures"
"$build/tools/gen_reranker" "$build/fixtures/reranker.gguf" --vocab-from "$vocab"
echo "fixtures.sh: $build/fixtures/reranker.gguf"
