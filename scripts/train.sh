#!/usr/bin/env bash
# Trains the Rasa model only when config.yml, bot/ or nlu_data/ changed (including the code of our own
# pipeline components that config.yml names, e.g. bot.intent_ensemble); prints the model's path.
set -euo pipefail
cd "$(dirname "$0")/.."
components=$(grep -o 'bot\.[a-z_]*' config.yml | sort -u | sed 's#\.#/#; s#$#.py#' \
  | while read -r file; do if [ -f "$file" ]; then echo "$file"; fi; done)
# shellcheck disable=SC2086  # one path per word
digest=$( { find config.yml bot/domain bot/stories bot/rules nlu_data -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.txt' \) -print0; printf '%s\0' $components; } \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
model="models/zhanyou-$digest.tar.gz"
if [ ! -f "$model" ]; then
  echo "==> training the Rasa model ($model)" >&2
  start=$(date +%s)
  .venv-rasa/bin/rasa train --config config.yml --domain bot/domain \
    --data nlu_data bot/stories bot/rules --out models --fixed-model-name "zhanyou-$digest" >&2
  echo "==> trained in $(( $(date +%s) - start )) s" >&2
  # Older models of this checkout are of no further use.
  find models -name 'zhanyou-*.tar.gz' ! -name "zhanyou-$digest.tar.gz" -delete
fi
echo "$model"
