"""The application: greets whoever the event names."""


def greeting(name: str) -> str:
    return f"Hello, {name}!"


def handler(event, context):
    return {"message": greeting(event.get("name", "world"))}
