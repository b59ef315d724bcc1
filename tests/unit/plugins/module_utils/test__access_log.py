"""The access log as nself's nginx container writes it and `docker logs --timestamps` reads it back."""
import datetime

from ansible_collections.nfamily.ops.plugins.module_utils import _access_log as al

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)


def line(seconds, status, path="/api/posts", method="GET", docker=True):
    moment = T0 + datetime.timedelta(seconds=seconds)
    local = moment.astimezone(datetime.timezone(datetime.timedelta(hours=1))).strftime("%d/%b/%Y:%H:%M:%S %z")
    prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z " if docker else ""
    return '%s172.18.0.1 - - [%s] "%s %s?family=1 HTTP/1.1" %d 512 "-" "Mozilla/5.0 \\"quoted\\""' % (
        prefix, local, method, path, status)


def test_a_line_is_read_with_dockers_time_or_nginxs_own():
    for docker in (True, False):
        entry = al.parse_line(line(5, 502, docker=docker))
        assert entry["status"] == 502 and entry["method"] == "GET" and entry["path"] == "/api/posts"
        assert entry["time"].replace(microsecond=0) == T0 + datetime.timedelta(seconds=5)


def test_what_is_not_an_access_line_is_skipped():
    for text in ("", "2026/12/01 03:00:00 [warn] 7#7: an error-log line on the same stream",
                 "/docker-entrypoint.sh: Configuration complete; ready for start up",
                 '1.2.3.4 - - [not a time] "GET / HTTP/1.1" 200 1 "-" "-"'):
        assert al.parse_line(text) is None


def test_a_window_counts_the_familys_requests_not_the_health_checks():
    lines = [line(s, 200) for s in range(0, 60, 2)] + [line(s, 503, "/api/media/upload", "POST") for s in (10, 20, 30)]
    lines += [line(s, 200, "/health") for s in range(60)] + [line(-5, 500), line(61, 500), "garbage"]
    window = al.summarize(lines, T0, T0 + datetime.timedelta(seconds=60))
    assert window["requests"] == 33 and window["server_errors"] == 3 and window["error_rate"] == round(3 / 33.0, 4)
    assert window["by_status"] == {"2xx": 30, "3xx": 0, "4xx": 0, "5xx": 3}
    assert window["top_error_paths"] == [{"path": "/api/media/upload", "count": 3}]


def test_the_criterion_fires_above_five_percent_and_never_on_too_little_traffic():
    before = al.summarize([line(s, 200) for s in range(100)], T0, T0 + datetime.timedelta(seconds=100))
    quiet = al.summarize([line(s, 500) for s in range(5)], T0, T0 + datetime.timedelta(seconds=100))
    assert al.judge(before, quiet) == (False, "5 request(s) in the window, fewer than the 20 needed to judge the error rate "
                                              "(0.0 % of 100 requests before)")
    bad = al.summarize([line(s, 500 if s % 10 == 0 else 200) for s in range(100)], T0, T0 + datetime.timedelta(seconds=100))
    assert al.judge(before, bad) == (True, "error rate 10.0 % of 100 requests above 5.0 % (0.0 % of 100 requests before)")
    fine = al.summarize([line(s, 500 if s % 25 == 0 else 200) for s in range(100)], T0, T0 + datetime.timedelta(seconds=100))
    assert al.judge(before, fine)[0] is False
