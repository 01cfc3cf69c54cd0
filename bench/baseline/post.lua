-- wrk script: the tutorial's curl example.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"content": "Hello from Flask Queue!"}'
