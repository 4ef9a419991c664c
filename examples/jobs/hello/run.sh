#!/bin/bash
# The payload arrives on stdin as JSON; stdout lines are logged as INFO, stderr as ERROR.
payload=$(cat)
echo "hello from attempt $ERRAND_ATTEMPT of job $ERRAND_JOB_ID"
echo "payload: $payload"
echo '{"progress": 50, "message": "half way"}' > "$ERRAND_CONTROL"
sleep 1
echo '{"result": {"greeted": true}}' > "$ERRAND_CONTROL"
