"""A scheduled function: EventBridge's "Scheduled Event" in, once a minute."""


def handler(event, context):
    print(f"tick at {event['time']} from {event['resources'][0]}")
    return {"ran": event["time"]}
