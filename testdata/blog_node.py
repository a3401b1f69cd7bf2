# A node as the blog writes it: Flask serves the connection check and the
# nodes endpoints, and requests announces the node to the seed (POST /) and
# fetches the seed's list (GET /nodes/), with no sample parameter.
# Usage: python3 blog_node.py PORT SEED_PORT. It prints what the seed
# answered as one JSON line, then serves until it is killed.
import json
import socket
import sys
import threading
import time

import requests
from flask import Flask, request

port, seed_port = int(sys.argv[1]), int(sys.argv[2])
node = {"ip_address": "127.0.0.1", "port": port}
seed = "http://127.0.0.1:%d" % seed_port
known = []
app = Flask(__name__)


@app.route("/", methods=["GET"])
def connection_check():
    return {}


@app.route("/", methods=["POST"])
def initial_connection():
    json_node = request.get_json()
    if json_node not in known:
        known.append(json_node)
    return json_node


@app.route("/nodes/", methods=["GET"])
def retrieve_nodes():
    return json.dumps(known)


def join():
    for _ in range(600):  # once Flask serves, so that the seed's check is answered
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    announced = requests.post(seed + "/", json=node, timeout=10)
    listed = requests.get(seed + "/nodes/", timeout=10)
    print(json.dumps({"announce": announced.status_code, "nodes": listed.json()}), flush=True)


threading.Thread(target=join).start()
app.run(host="127.0.0.1", port=port)
