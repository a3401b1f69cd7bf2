# A node as the blog writes it: Flask serves the connection check and the
# nodes endpoints, and requests announces the node to the seed (POST /) and
# fetches the seed's list (GET /nodes/), with no sample parameter.
# Usage: python3 blog_node.py PORT SEED_PORT. It prints what the seed
# answered as one JSON line, then serves until it is killed.
import json
import sys
import threading

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
    announced = requests.post(seed + "/", json=node, timeout=10)
    listed = requests.get(seed + "/nodes/", timeout=10)
    print(json.dumps({"announce": announced.status_code, "nodes": listed.json()}), flush=True)


threading.Timer(0.5, join).start()  # once Flask serves, so the seed's check is answered
app.run(host="127.0.0.1", port=port)
