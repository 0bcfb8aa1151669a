#!/usr/bin/env python3
"""A small client of `hush agent`'s JSON-RPC 2.0 API, with the standard library only.

The agent listens on `agent.sock` in the account's home directory and speaks JSON-RPC 2.0,
one JSON object per line in both directions. This is what a bot needs:

    agent = Agent("/path/to/home/agent.sock")
    agent.call("subscribe")                       # incoming messages become notifications
    message = agent.next_message(timeout=60)      # {"from": ..., "body": ..., ...}
    agent.call("send", to=message["from"], text="hello")
    agent.call("history", jid=message["from"], limit=10)

Run as a script, it is the bot of the test `crates/hush-cli/tests/agent.rs`: it subscribes,
answers the first message it gets with "echo: BODY", then prints (one JSON object per line)
what the agent answered: `ping`, the message, the send's result, the history and the errors
of a request for an unknown method and one without its parameters.
"""

import json
import socket
import sys


class AgentError(Exception):
    """The agent answered a request with a JSON-RPC error."""

    def __init__(self, error):
        super().__init__(error.get("message"))
        self.code = error.get("code")


class Agent:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 1
        self.pending = []  # notifications read while waiting for a response

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("the agent closed the connection")
        return json.loads(line)

    def call(self, method, **params):
        request_id = self.next_id
        self.next_id += 1
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.file.write(json.dumps(request).encode() + b"\n")
        self.file.flush()
        while True:
            answer = self._read()
            if "id" not in answer:
                self.pending.append(answer)
                continue
            if answer["id"] != request_id:
                raise ValueError(f"an answer to request {answer['id']}, not {request_id}")
            if "error" in answer:
                raise AgentError(answer["error"])
            return answer["result"]

    def next_message(self, timeout=None):
        """The next incoming message (after `subscribe`), or None after `timeout` seconds."""
        if self.pending:
            return self.pending.pop(0)["params"]
        self.sock.settimeout(timeout)
        try:
            notification = self._read()
        except (socket.timeout, TimeoutError):
            return None
        finally:
            self.sock.settimeout(None)
        assert notification.get("method") == "message", notification
        return notification["params"]


def main():
    agent = Agent(sys.argv[1])
    out = lambda kind, value: print(json.dumps({kind: value}), flush=True)
    out("ping", agent.call("ping"))
    out("subscribe", agent.call("subscribe"))
    message = agent.next_message(timeout=120)
    out("message", message)
    out("sent", agent.call("send", to=message["from"], text="echo: " + message["body"]))
    out("history", agent.call("history", jid=message["from"], limit=10))
    for method, params in (("no-such-method", {}), ("send", {"to": message["from"]})):
        try:
            agent.call(method, **params)
            out("error", None)
        except AgentError as e:
            out("error", {"code": e.code, "message": str(e)})


if __name__ == "__main__":
    main()
