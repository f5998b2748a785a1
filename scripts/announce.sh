#!/usr/bin/env bash
# Waits until every part answers, then says how to talk to the assistant. Stays up: honcho stops
# the whole stack when any of its processes exits.
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:${WEBHOOK_PORT}/readyz" >/dev/null 2>&1; then
    echo "=================================================================="
    echo " 战友 Zhanyou is ready."
    echo "  WeChat webhook : http://127.0.0.1:${WEBHOOK_PORT}/wechat"
    echo "  Staff console  : http://127.0.0.1:${WEBHOOK_PORT}/admin  (first admin: make staff)"
    echo "  Try it         : open another terminal and run  make chat"
    echo "  Stop           : Ctrl-C"
    echo "=================================================================="
    exec sleep infinity
  fi
  sleep 2
done
echo "Zhanyou did not become ready in 6 minutes: see the log lines above (curl http://127.0.0.1:${WEBHOOK_PORT}/readyz)."
exec sleep infinity
