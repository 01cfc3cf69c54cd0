"""The tutorial's app.py (shared/reference), measured as the baseline.

Unchanged but for two lines: Redis comes from REDIS_URL so the benchmark can put it on a
loopback port of its own, and rq-dashboard is left out (it serves a UI, not the path measured).
"""
import os

from flask import Flask, request, jsonify
from redis import Redis
from rq import Queue

from models import db, Message

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///messages.db"

db.init_app(app)
redis_conn = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
queue = Queue(connection=redis_conn)

with app.app_context():
    db.create_all()


@app.route("/add_message", methods=["POST"])
def add_message():
    data = request.get_json()
    if not data or "content" not in data:
        return jsonify({"error": "Content is required"}), 400

    content = data["content"]
    job = queue.enqueue("task_queue.save_message", content)
    return jsonify({"message": "Message enqueued", "job_id": job.get_id()}), 202


@app.route("/messages", methods=["GET"])
def get_messages():
    messages = Message.query.all()
    return jsonify(
        [{"id": m.id, "content": m.content, "timestamp": m.timestamp} for m in messages]
    )
