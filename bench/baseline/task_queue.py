"""The tutorial's task_queue.py, unchanged."""


def save_message(content):
    from app import app, db, Message

    with app.app_context():
        message = Message(content=content)
        db.session.add(message)
        db.session.commit()
