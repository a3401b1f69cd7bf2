# A node as the blog writes it: Flask serves the connection check and the
# nodes endpoints, and requests announces the node to the seed (POST /) and
# fetches the seed's list (GET /nodes/), with no sample parameter.
# Usage: python3 blog_node.py SEED_PORT. It listens on a port the kernel
# picks (as app.run does, through werkzeug), prints its port and what the
# seed answered as one JSON line, then serves until it is killed.
import json
import sys
import threading

import requests
from flask import Flask, request
from werkzeug.serving import make_server

seed_port = int(sys.argv[1])
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
    print(json.dumps({"port": node["port"], "announce": announced.status_code, "answer": announced.text,
                      "nodes": listed.json()}), flush=True)


server = make_server("127.0.0.1", 0, app, threaded=True)  # listening from here: the seed's check is answered
node = {"ip_address": "127.0.0.1", "port": server.server_port}
threading.Thread(target=join).start()
server.serve_forever()
