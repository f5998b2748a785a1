#!/usr/bin/env bash
# Model load time: from `rasa run` to a loaded model answering /status (one Sanic worker), twice.
# Run from anywhere: bash benchmarks/nlu/load_time.sh  (MODEL=... to pick a model; needs port 5077 free)
cd "$(dirname "$0")/../.."
MODEL="${MODEL:-$(ls models/zhanyou-*.tar.gz | head -1)}"
for i in 1 2; do
  port=5077
  start=$(date +%s.%N)
  ACTION_SERVER_URL=http://127.0.0.1:5055/webhook .venv-rasa/bin/rasa run --enable-api --model "$MODEL" --port $port \
    --endpoints bot/endpoints.yml --credentials bot/credentials.yml > /tmp/loadtime.$i.log 2>&1 &
  pid=$!
  until curl -sf http://127.0.0.1:$port/status | grep -q model_file; do sleep 0.2; done
  end=$(date +%s.%N)
  echo "run $i: $(python3 -c "print(round($end-$start,1))") s from process start to a loaded model ($MODEL)"
  grep -E "Loading model|up and running" /tmp/loadtime.$i.log | sed 's/^/  /' | head -3
  kill $pid; wait $pid 2>/dev/null
done
