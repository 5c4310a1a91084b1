"""Drive the Heimdall sandbox with Twilio's official Python library.

Usage: twilio_official.py <base_url> <account_sid> <auth_token> [<content_sid>]

The library is pointed at the sandbox through its own per-domain knob,
``client.api.base_url`` (Messages API) and ``client.content.base_url``
(Content API); nothing else about it is changed. Exits 0 when every check
passes; any failed assertion or exception exits non-zero.

Needs the ``twilio`` package: ``python3 -m pip install twilio``.
"""

import json
import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client


def client_for(base_url, account_sid, auth_token):
    client = Client(account_sid, auth_token)
    client.api.base_url = base_url
    client.content.base_url = base_url
    return client


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    base_url = argv[1].rstrip("/")
    account_sid = argv[2]
    auth_token = argv[3]
    content_sid = argv[4] if len(argv) > 4 else None

    client = client_for(base_url, account_sid, auth_token)

    # Create a WhatsApp message and check the fields the library parsed.
    message = client.messages.create(
        to="whatsapp:+14155550101",
        from_="whatsapp:+15005550006",
        body="Hello from the official library",
    )
    assert message.sid.startswith("SM") and len(message.sid) == 34, message.sid
    assert message.account_sid == account_sid, message.account_sid
    assert message.status == "queued", message.status
    assert message.to == "whatsapp:+14155550101", message.to
    assert message.from_ == "whatsapp:+15005550006", message.from_
    assert message.body == "Hello from the official library", message.body
    assert message.direction == "outbound-api", message.direction
    assert message.api_version == "2010-04-01", message.api_version
    assert message.price_unit == "USD", message.price_unit
    assert message.num_segments == "1", message.num_segments
    assert message.error_code is None, message.error_code
    assert message.date_created is not None, "date_created did not parse as RFC 2822"
    assert message.uri.endswith(message.sid + ".json"), message.uri

    # Read it back by SID.
    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid
    assert fetched.body == message.body
    assert fetched.to == message.to
    assert fetched.date_created == message.date_created

    # The list endpoint, with paging.
    client.messages.create(to="+14155550102", from_="+15005550006", body="second")
    listed = client.messages.list(page_size=1, limit=10)
    sids = [m.sid for m in listed]
    assert message.sid in sids, sids
    assert len(sids) == 2, sids

    # A template with variables.
    if content_sid:
        templated = client.messages.create(
            to="whatsapp:+14155550101",
            from_="whatsapp:+15005550006",
            content_sid=content_sid,
            content_variables=json.dumps({"1": "Call Bob", "2": "17:00"}),
        )
        assert templated.body == "Reminder: Call Bob is due at 17:00.", templated.body

        contents = client.content.v1.contents.list(page_size=2)
        names = sorted(c.friendly_name for c in contents)
        assert "task_reminder" in names and len(names) >= 7, names
        approval = client.content.v1.contents(content_sid).approval_fetch().fetch()
        assert approval.whatsapp["status"] == "approved", approval.whatsapp
        assert approval.whatsapp["category"] == "UTILITY", approval.whatsapp

    # Create content, submit it for WhatsApp approval, delete it.
    from twilio.rest.content.v1.content import ContentList
    from twilio.rest.content.v1.content.approval_create import ApprovalCreateList

    created = client.content.v1.contents.create(
        ContentList.ContentCreateRequest(
            {
                "friendly_name": "library_welcome",
                "language": "en",
                "variables": {"1": "Kari"},
                "types": {"twilio/text": {"body": "Hi {{1}}, welcome."}},
            }
        )
    )
    assert created.sid.startswith("HX") and len(created.sid) == 34, created.sid
    assert created.friendly_name == "library_welcome", created.friendly_name
    assert created.types["twilio/text"]["body"] == "Hi {{1}}, welcome.", created.types
    assert created.variables == {"1": "Kari"}, created.variables
    submitted = client.content.v1.contents(created.sid).approval_create.create(
        ApprovalCreateList.ContentApprovalRequest(
            {"name": "library_welcome", "category": "UTILITY"}
        )
    )
    assert submitted.status == "received", submitted.status
    assert submitted.category == "UTILITY", submitted.category
    assert submitted.name == "library_welcome", submitted.name
    fetched = client.content.v1.contents(created.sid).approval_fetch().fetch()
    assert fetched.whatsapp["status"] == "pending", fetched.whatsapp
    quick = client.content.v1.contents.create(
        ContentList.ContentCreateRequest(
            {
                "language": "en",
                "types": {
                    "twilio/quick-reply": {
                        "body": "Coming?",
                        "actions": [{"title": "Yes", "id": "yes"}],
                    }
                },
            }
        )
    )
    assert quick.types["twilio/quick-reply"]["actions"][0]["id"] == "yes", quick.types
    try:
        client.content.v1.contents.create(
            ContentList.ContentCreateRequest(
                {"language": "en", "types": {"twilio/text": {}}}
            )
        )
        raise AssertionError("expected a refusal of a text without a body")
    except TwilioRestException as e:
        assert e.status == 400 and e.code == 20001, (e.status, e.code)
    assert client.content.v1.contents(created.sid).delete() is True

    # Twilio's documented test number for an invalid 'To'.
    try:
        client.messages.create(to="+15005550001", from_="+15005550006", body="x")
        raise AssertionError("expected error 21211")
    except TwilioRestException as e:
        assert e.status == 400 and e.code == 21211, (e.status, e.code)

    # Wrong credentials.
    bad = client_for(base_url, account_sid, "not-the-token")
    try:
        bad.messages.create(to="+14155550101", from_="+15005550006", body="x")
        raise AssertionError("expected error 20003")
    except TwilioRestException as e:
        assert e.status == 401 and e.code == 20003, (e.status, e.code)

    print("official twilio library: ok (message %s)" % message.sid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
