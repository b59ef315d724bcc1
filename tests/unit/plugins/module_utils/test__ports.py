import os

import pytest

from ansible_collections.nfamily.ops.plugins.module_utils import _ports

TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def tcp_line(port, state, uid, inode, address="00000000"):
    return "   0: %s:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000 %5d        0 %d 1\n" % (
        address, port, state, uid, inode)


@pytest.fixture
def proc(tmp_path):
    """A /proc with a foreign nginx (pid 812) on 80 and 443, a client socket on 8080, and pid 900 unreadable."""
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(TCP_HEADER + tcp_line(80, "0A", 0, 5001) + tcp_line(443, "0A", 0, 5002)
                                          + tcp_line(8080, "01", 33, 5003) + tcp_line(4000, "0A", 33, 5004))
    (tmp_path / "net" / "tcp6").write_text(TCP_HEADER + tcp_line(80, "0A", 0, 5005, "0" * 32))
    fd = tmp_path / "812" / "fd"
    fd.mkdir(parents=True)
    for number, inode in enumerate((5001, 5002, 5005)):
        os.symlink("socket:[%d]" % inode, str(fd / str(number)))
    os.symlink("/dev/null", str(fd / "9"))
    (tmp_path / "812" / "cmdline").write_bytes(b"nginx: master process /usr/sbin/nginx\0")
    (tmp_path / "self").mkdir()
    return str(tmp_path)


@pytest.mark.parametrize("env,service,expected", [
    ({}, "nginx", [("NGINX_PORT", 80), ("NGINX_SSL_PORT", 443)]),
    ({"NGINX_SSL_PORT": "8443"}, "nginx", [("NGINX_PORT", 80), ("NGINX_SSL_PORT", 8443)]),
    ({"ENV": "prod"}, "postgres", []),
    ({"ENV": "dev"}, "postgres", [("POSTGRES_PORT", 5432)]),
    ({"CS_1": "auth:fastify:4000", "CS_2": "api:fastify:4001:api"}, "api", [("CS_2", 4001)]),
    ({"CS_3": "scheduler:node:0"}, "scheduler", []),
])
def test_published_ports_follow_the_env(env, service, expected):
    assert _ports.published_ports(env, service) == expected


def test_listeners_of_a_down_service_are_named_once_per_process(proc):
    holders = _ports.port_holders({}, ["nginx"], proc)
    assert [(h["port"], h["pid"], h["user"]) for h in holders] == [(80, 812, "root"), (443, 812, "root")]
    assert holders[0]["command"] == "nginx: master process /usr/sbin/nginx"
    assert _ports.describe(holders) == ["ports 80 (NGINX_PORT), 443 (NGINX_SSL_PORT) of nginx are held by pid 812 "
                                        "(nginx: master process /usr/sbin/nginx, user root)"]


def test_a_socket_this_account_cannot_trace_is_named_by_its_user(proc):
    holders = _ports.port_holders({"CS_1": "auth:fastify:4000"}, ["auth"], proc)
    assert holders == [{"service": "auth", "port": 4000, "variable": "CS_1", "pid": None, "command": "", "user": "www-data"}]
    assert "a process of user www-data that this account cannot see" in _ports.describe(holders)[0]


def test_a_free_port_has_no_holder(proc):
    assert _ports.port_holders({"CS_2": "api:fastify:4001"}, ["api", "hasura"], proc) == []


def test_a_docker_proxy_holder_is_named_as_another_container():
    holder = {"service": "nginx", "port": 443, "variable": "NGINX_SSL_PORT", "pid": 7, "user": "root",
              "command": "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 443"}
    assert _ports.describe([holder])[0].endswith("a container outside this project publishes it (docker ps --filter publish=443)")
