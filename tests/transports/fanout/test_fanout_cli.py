"""``kraken-ws publish`` and ``kraken-ws stream --from`` against a real redis-server, the
publisher streaming from the embedded simulator."""

from __future__ import annotations

import json

import pytest
from engines import Server

from kraken_transports.cli import main


def test_publish_then_stream_from_the_engine(
    redis_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = redis_server.url
    common = ["--prefix", "clitest"]
    code = main(
        [
            "publish",
            "BTC/USD",
            "ETH/USD",
            "--channel",
            "book,trade",
            "--to",
            url,
            "--duration",
            "0.6",
            "--snapshot-every",
            "5",
            *common,
        ]
    )
    assert code == 0
    status = capsys.readouterr().err.strip().splitlines()[-1]
    assert status.startswith("published ") and "dropped 0" in status
    code = main(
        [
            "stream",
            "--from",
            url,
            "BTC/USD",
            "--channel",
            "book",
            "--json",
            "--duration",
            "0.3",
            *common,
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # A late reader: the latest verified snapshot first.
    assert lines and lines[0]["type"] == "book" and lines[0]["snapshot"] is True
    assert lines[0]["symbol"] == "BTC/USD" and len(lines[0]["bids"]) == 10


def test_a_shard_without_pairs_and_bad_arguments(
    redis_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    # BTC/USD hashes to shard 1 of 2: shard 0 has nothing to publish.
    assert main(["publish", "BTC/USD", "--to", redis_server.url, "--shard", "0/2"]) == 0
    assert "shard 0/2 has none of these pairs" in capsys.readouterr().err
    for argv, message in (
        (["publish", "BTC/USD", "--to", "kafka://x"], "argument --to: url must start"),
        (["publish", "BTC/USD", "--to", redis_server.url, "--shard", "2/2"], "need 0 <= I < N"),
        (["publish", "BTC/USD", "--to", redis_server.url, "--shard", "x"], "is not I/N"),
        (["publish", "BTC/USD", "--to", redis_server.url, "--maxlen", "0"], "must be >= 1"),
        (
            [
                "publish",
                "BTC/USD",
                "--to",
                redis_server.url,
                "--url",
                "ws://127.0.0.1:1/v2",
                "--live",
            ],
            "not allowed with --url",
        ),
        (["stream", "--from", "kafka://x", "BTC/USD"], "argument --from: url must start"),
        (["stream", "--from", redis_server.url, "--prefix", "a.b", "BTC/USD"], "--prefix"),
    ):
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_an_engine_that_cannot_be_reached_is_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engines import free_port  # noqa: PLC0415

    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["stream", "--from", url, "BTC/USD", "--duration", "0.2"]) == 1
    assert f"cannot reach {url}" in capsys.readouterr().err
