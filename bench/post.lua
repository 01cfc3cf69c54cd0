-- wrk script: POST a small message, as the tutorial's curl example does.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"content": "Hello from wrk!"}'
