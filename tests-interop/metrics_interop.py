"""Ketaflow's /metrics read by an outside parser (issue 20).

Runs against a live `ketaflow serve --demo`: the exposition text is parsed by the Prometheus
project's own Python client (`prometheus_client.parser.text_string_to_metric_families`), and the
counters must move as a reading is posted through the JSON API.

    python metrics_interop.py BASE_URL USERNAME PASSWORD
"""

import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BASE, USERNAME, PASSWORD = sys.argv[1], sys.argv[2], sys.argv[3]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1
    print(f"ok: {what}")


def call(method, path, body=None, token=None, cookie=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def scrape():
    status, text, headers = call("GET", "/metrics")
    check(status == 200, "GET /metrics answers 200 on loopback")
    check(headers["Content-Type"].startswith("text/plain; version=0.0.4"), "the exposition format 0.0.4 is declared")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families


def value(families, family, sample_name, **labels):
    f = families.get(family)
    if f is None:
        return 0.0
    for s in f.samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


status, body, _ = call("GET", "/healthz")
check(status == 200 and json.loads(body) == {"status": "up"}, "/healthz says the process is up")
status, body, _ = call("GET", "/readyz")
ready = json.loads(body)
check(status == 200 and ready["status"] == "ready", "/readyz is ready on a healthy database")
check("commit" in ready["version"] or "unknown commit" in ready["version"], "/readyz names the build")

status, body, headers = call("POST", "/api/v1/auth/login", {"username": USERNAME, "password": PASSWORD})
check(status == 200, f"{USERNAME} signs in")
cookie = headers["Set-Cookie"].split(";", 1)[0]
status, body, _ = call("POST", "/api/v1/auth/tokens", {"label": "metrics interop", "days": 1}, cookie=cookie)
check(status in (200, 201), "a bearer token is made for the API")
token = json.loads(body)["token"]
status, body, _ = call("GET", "/api/v1/board", token=token)
chairs = json.loads(body)["chairs"]
check(status == 200 and chairs, "the demo board has chairs")
session = chairs[0]["session_id"]

before = scrape()
# prometheus_client names a counter family without its _total suffix; the sample keeps it.
check(before["ketaflow_http_request_duration_seconds"].type == "histogram", "request latency is a histogram")
check(before["ketaflow_db_pool_wait_seconds"].type == "histogram", "pool waits are a histogram")
check(before["ketaflow_db_pool_connections"].type == "gauge", "pool size is a gauge")
readings_before = value(before, "ketaflow_readings_ingested", "ketaflow_readings_ingested_total", source="manual")
alarms_before = value(before, "ketaflow_alarms_raised", "ketaflow_alarms_raised_total", code="spo2_low", priority="high")

reading = {"idempotency_key": "metrics-interop-1", "systolic_mmhg": 128, "diastolic_mmhg": 80,
           "heart_rate_per_min": 72, "spo2_percent": 86, "respiratory_rate_per_min": 14,
           "temperature_c": 36.7, "consciousness": "alert", "on_oxygen": False, "moaas": 5}
status, body, _ = call("POST", f"/api/v1/sessions/{session}/vitals", {"readings": [reading]}, token)
check(status == 200, f"a reading is stored ({status} {body[:200]})")

after = scrape()
readings_after = value(after, "ketaflow_readings_ingested", "ketaflow_readings_ingested_total", source="manual")
alarms_after = value(after, "ketaflow_alarms_raised", "ketaflow_alarms_raised_total", code="spo2_low", priority="high")
check(readings_after - readings_before == 1, f"readings ingested moved by one ({readings_before} -> {readings_after})")
check(alarms_after - alarms_before >= 1, f"the SpO2 alarm was counted ({alarms_before} -> {alarms_after})")
posted = value(after, "ketaflow_http_request_duration_seconds", "ketaflow_http_request_duration_seconds_count",
               route="/api/v1/sessions/{id}/vitals", method="POST", status="200")
check(posted >= 1, "the POST is timed under its route template")
check(session not in json.dumps([s.labels for f in after.values() for s in f.samples]), "no session id in any label")

print(f"metrics interop: {checks} checks passed")
