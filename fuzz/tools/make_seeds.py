#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/seeds/<target>/ (and copies a few
into fuzz/regressions/<target>/ so `cargo test` replays them).

Encodes by hand: protobuf (the requests of proto/comments/v1), postcard with
commentd's format byte (store events and view values, see
src/store/event.rs), format-1 JSON records (src/store/migrate.rs) and page
tokens (src/paging.rs). Run from anywhere: python3 fuzz/tools/make_seeds.py
"""
import base64
import json
import os
import struct

FUZZ = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(FUZZ)
FORMAT = 2


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# --- protobuf -------------------------------------------------------------
def pb_str(field, s):
    b = s.encode() if isinstance(s, str) else s
    return varint(field << 3 | 2) + varint(len(b)) + b


def pb_int(field, n):
    return varint(field << 3) + varint(n & 0xFFFFFFFFFFFFFFFF)


def pb_msg(field, body):
    return varint(field << 3 | 2) + varint(len(body)) + body


def timestamp(seconds, nanos=0):
    return pb_int(1, seconds) + pb_int(2, nanos)


# --- postcard -------------------------------------------------------------
def pc_str(s):
    b = s.encode()
    return varint(len(b)) + b


def pc_opt(x):
    return b"\x00" if x is None else b"\x01" + x


def pc_time(secs, nanos=0):
    return varint(secs) + varint(nanos)


def pc_vec(items):
    return varint(len(items)) + b"".join(items)


def stored(body):
    return bytes([FORMAT]) + body


def reason(filter_, code, decision, severity=None, category=None):
    return (varint(filter_) + pc_str(code) + pc_str("because " + code)
            + pc_opt(None if category is None else pc_str(category))
            + pc_opt(None if severity is None else varint(severity))
            + varint(decision))


def verdict(decision, reasons=(), censored=None):
    return varint(decision) + pc_vec(list(reasons)) + pc_opt(None if censored is None else pc_str(censored))


T0 = 1_777_636_800
ART = "news/2026/city-budget"


def submitted(decision, reasons=(), text="Clear reporting, thank you.", parent=None):
    return (varint(0) + pc_str(ART) + pc_opt(pc_str("Ana")) + pc_opt(pc_str(text))
            + pc_opt(None if parent is None else varint(parent)) + pc_str("reader-42")
            + pc_time(T0, 5) + verdict(decision, reasons) + varint(0x1234_5678_9ABC_DEF0))


def moderated(action, comment_id, source):
    return (varint(1) + varint(action) + varint(comment_id) + varint(source) + pc_str(ART)
            + pc_str("reader-42") + pc_str("mod-ana") + pc_str("checked") + pc_time(T0 + 60))


def settings(closed=False, mode=0, auto_close=None, newcomers=0):
    return (bytes([closed]) + varint(mode)
            + pc_opt(None if auto_close is None else pc_time(auto_close)) + varint(newcomers))


def term(text, effect):
    return pc_str(text) + varint(effect) + pc_str("mod-ana") + pc_time(T0)


def ban(expires=None):
    return (pc_str("reader-13") + pc_str("spam") + pc_opt(None if expires is None else pc_time(expires))
            + pc_str("mod-ana") + pc_time(T0))


def write(target, name, data, regression=False):
    dirs = [os.path.join(FUZZ, "seeds", target)]
    if regression:
        dirs.append(os.path.join(FUZZ, "regressions", target))
    for d in dirs:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def page_token(scope, last):
    return base64.urlsafe_b64encode(f"v1\n{scope}\n{last:016x}".encode()).rstrip(b"=").decode()


def main():
    # decode_requests: one valid message of each kind (every target decodes
    # the same bytes as every request type).
    requests = {
        "submit": pb_str(1, ART) + pb_str(2, "Ana") + pb_str(3, "Clear reporting on a complicated budget, thank you.")
        + pb_str(5, "reader-42") + pb_str(6, "5c1f0e8a"),
        "submit_reply": pb_str(1, ART) + pb_str(2, "Ben") + pb_str(3, "Agreed.") + pb_str(4, "0000000000000001")
        + pb_str(5, "reader-7"),
        "check": pb_str(1, "what the hell is this") + pb_str(2, "Ana"),
        "get": pb_str(1, "0000000000000001"),
        "list": pb_str(1, ART) + pb_int(2, 20) + pb_str(3, page_token("comments:" + ART, 42)),
        "list_negative_size": pb_str(1, ART) + pb_int(2, -1),
        "subscribe": pb_str(1, ART) + pb_str(2, "00000000000000ff"),
        "held": pb_int(2, 10) + pb_str(3, page_token("held:*", 7)),
        "moderate": pb_str(1, "0000000000000003") + pb_int(2, 1) + pb_str(3, "fine"),
        "update_article": pb_str(1, ART) + pb_msg(2, pb_int(1, 1) + pb_int(2, 2) + pb_msg(3, timestamp(1_798_761_600, 5))
                                                 + pb_int(4, 2)),
        "add_terms": pb_str(1, "Buy  Now") + pb_str(1, "city budget") + pb_int(2, 1),
        "ban": pb_str(1, "reader-13") + pb_str(2, "spam") + pb_msg(3, timestamp(1_893_456_000)) + pb_int(4, 1),
        "ban_far_future": pb_str(1, "reader-13") + pb_msg(3, timestamp(1 << 62)),
        "audit": pb_str(2, "0000000000000001") + pb_int(3, 5) + pb_str(4, page_token("audit:c:0000000000000001", 9)),
    }
    for name, data in requests.items():
        write("decode_requests", name, data, regression=name in ("submit", "update_article", "ban"))

    # screening: real comment texts, some with author names.
    lines = [l.strip() for l in open(os.path.join(ROOT, "tests/data/news_ordinary.txt"), encoding="utf-8")
             if l.strip() and not l.startswith("#")]
    authors = ["Ana", "Ben K.", "Zoë", "", "Маша"]
    for i, line in enumerate(lines[:40]):
        data = (authors[i % len(authors)].encode() + b"\0" if authors[i % len(authors)] else b"") + line.encode()
        write("screening", f"news_{i:02}", data, regression=i < 2)
    extra = {
        "profane": b"Ana\0what the hell is this, you absolute f*cking idiot",
        "spam": b"Deals\0BUY NOW!!! cheap pills at http://example.com/x http://example.com/y",
        "terms": b"Ana\0The city budget is a hell of a mess.",
        "multiline": b"Ana\0First line.\nSecond line with a tab\tand more.",
    }
    for name, data in extra.items():
        write("screening", name, data, regression=name == "terms")

    # page_tokens: tokens of the scopes the target tries; and position +
    # article id inputs for the round trip.
    tokens = {
        "comments": page_token("comments:" + ART, 42),
        "held_all": page_token("held:*", 1),
        "held_article": page_token("held:" + ART, 0xFFFF),
        "audit_all": page_token("audit:*", 12345),
        "audit_comment": page_token("audit:c:0000000000000001", 2),
    }
    for name, token in tokens.items():
        write("page_tokens", name, token.encode(), regression=name == "comments")
    write("page_tokens", "position_and_article", struct.pack(">Q", 42) + ART.encode(), regression=True)
    write("page_tokens", "max_position_and_article", struct.pack(">Q", 2**64 - 1) + b"a")

    # store_records, kind 0: events.
    events = {
        "approved": submitted(0),
        "held": submitted(1, [reason(0, "profanity.mild", 1, severity=0, category="profanity")]),
        "rejected": submitted(2, [reason(1, "spam.links", 2)], text="buy now"),
        "reply": submitted(0, parent=1),
        "approve": moderated(0, 2, 2),
        "remove": moderated(2, 1, 1),
        "article_updated": varint(2) + pc_str(ART) + settings(True, 1, T0 + 86400, 3) + pc_str("mod-ana")
        + pc_str("closing") + pc_time(T0),
        "terms_added": varint(3) + pc_vec([term("buy now", 1), term("hell", 2)]) + pc_str("mod-ana")
        + pc_str("buy now, hell") + pc_time(T0),
        "terms_removed": varint(4) + pc_vec([pc_str("buy now")]) + pc_str("mod-ana") + pc_str("buy now") + pc_time(T0),
        "client_banned": varint(5) + ban(T0 + 3600),
        "client_unbanned": varint(6) + pc_str("reader-13") + pc_str("mod-ana") + pc_time(T0),
    }
    for name, body in events.items():
        write("store_records", "event_" + name, b"\x00" + stored(body),
              regression=name in ("approved", "held", "client_banned"))
    # kind 1: view entries (key NUL value).
    views = {
        "listing_published": (b"Anews\0", varint(0) + varint(1)),
        "listing_removed": (b"Anews\0", varint(1) + varint(1)),
        "status_published": (b"L1", varint(0) + pc_str(ART) + varint(1)),
        "status_approved_as": (b"L2", varint(2) + varint(5)),
        "status_rejected": (b"L3", varint(3)),
        "ban_record": (b"Breader-13", ban(None) + varint(7)),
        "settings": (b"S" + ART.encode(), settings(False, 1, None, 2)),
        "term": (b"Wbuy now", term("buy now", 1)),
        "dedup": (b"Dreader-42", varint(3) + varint(T0)),
    }
    for name, (key, value) in views.items():
        write("store_records", "view_" + name, b"\x01" + key + b"\0" + stored(value),
              regression=name == "status_published")

    # kind 2: format-1 records (JSON values, as commentd before the log
    # wrote them: src/store/migrate.rs and tests/fixtures/store-v1).
    def t(secs):
        return {"secs_since_epoch": secs, "nanos_since_epoch": 0}

    comment = {"id": 1, "article_id": ART, "author_name": "Ana", "text": "Clear reporting.", "parent_id": None,
               "client_id": "reader-42", "created_at": t(T0), "state": "Published"}
    held = dict(comment, id=2, text="Held one.", state="Held")
    audit = lambda id_, action, comment_id=None, decision=None, note="": {
        "id": id_, "time": t(T0 + id_), "actor": "filter" if action == "Screened" else "mod-ana", "action": action,
        "article_id": ART, "comment_id": comment_id, "client_id": "reader-42", "decision": decision,
        "reasons": [], "note": note}
    records = [
        (b"u" + struct.pack(">Q", 1), audit(1, "Screened", 1, "Approved")),
        (b"u" + struct.pack(">Q", 2), audit(2, "Screened", 2, "Held")),
        (b"u" + struct.pack(">Q", 3), audit(3, "Approved", 2)),
        (b"u" + struct.pack(">Q", 4), audit(4, "TermsAdded", note="buy now, hell")),
        (b"u" + struct.pack(">Q", 5), audit(5, "ClientBanned", note="spam")),
        (b"i" + struct.pack(">Q", 2), {"ApprovedAs": 3}),
        (b"l" + ART.encode() + b"\0" + struct.pack(">Q", 1), {"Published": comment}),
        (b"l" + ART.encode() + b"\0" + struct.pack(">Q", 3), {"Published": dict(comment, id=3, text="Held one.")}),
        (b"h" + struct.pack(">Q", 2), {"comment": held}),
        (b"kreader-42\0key-1", {"fingerprint": 99, "comment": comment, "recorded_at": t(T0)}),
        (b"s" + ART.encode(), {"comments_closed": False, "moderation_mode": "Pre", "auto_close_at": None,
                               "newcomer_approvals_required": 1}),
        (b"wbuy now", {"text": "buy now", "effect": "Reject", "added_by": "mod-ana", "added_at": t(T0)}),
        (b"breader-42", {"client_id": "reader-42", "reason": "spam", "expires_at": None, "created_by": "mod-ana",
                         "created_at": t(T0)}),
    ]

    def v1(recs):
        out = b"\x02"
        for key, value in recs:
            v = json.dumps(value, separators=(",", ":")).encode()
            out += bytes([len(key)]) + key + struct.pack("<H", len(v)) + v
        return out

    write("store_records", "v1_all", v1(records), regression=True)
    write("store_records", "v1_screened_only", v1(records[:1] + records[6:7]))


if __name__ == "__main__":
    main()
