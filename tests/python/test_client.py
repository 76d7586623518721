#!/usr/bin/env python3
"""End-to-end test of commentd through a Python gRPC client.

The client code is generated from proto/ with grpcio-tools into a temporary
folder at start-up (nothing generated is committed), then every RPC of
comments.v1.CommentService is exercised against a running server:

    python3 tests/python/test_client.py HOST:PORT

The server should run with `--rate-limit-burst 0` (these tests submit many
comments). Every submission uses its own client_id and text, so duplicate
detection does not interfere either. Prints unittest's per-test lines, then
a last line "N passed, M failed"; exits non-zero when anything failed.
"""

import atexit
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(REPO, "proto")
PROTO_FILE = "comments/v1/comments.proto"

ADDRESS = None  # set in main()
RUN = uuid.uuid4().hex[:8]  # keeps articles and client_ids of runs apart
ID_RE = re.compile(r"^[0-9a-f]{16}$")
UNKNOWN_ID = "00000000000fffff"
RPC_TIMEOUT = 10  # seconds, per unary call

grpc = pb = pb_grpc = None  # imported in generate_client()


def generate_client():
    """Compiles proto/ into a temp dir and imports the generated modules."""
    global grpc, pb, pb_grpc
    import grpc as grpc_module
    import grpc_tools
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="commentd-pyclient-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        PROTO_FILE,
    ])
    if status != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with status {status}")
    sys.path.insert(0, out)
    from comments.v1 import comments_pb2, comments_pb2_grpc

    grpc, pb, pb_grpc = grpc_module, comments_pb2, comments_pb2_grpc


class CommentServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.channel = grpc.insecure_channel(ADDRESS)
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = pb_grpc.CommentServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    # --- helpers -----------------------------------------------------------

    def article(self, name):
        return f"pytest/{RUN}/{name}"

    def submit(self, article_id, text, timeout=RPC_TIMEOUT, **fields):
        fields.setdefault("author_name", "Py Tester")
        fields.setdefault("client_id", f"py-{uuid.uuid4().hex}")
        request = pb.SubmitCommentRequest(article_id=article_id, text=text, **fields)
        return self.stub.SubmitComment(request, timeout=timeout)

    def submit_approved(self, article_id, text, **fields):
        response = self.submit(article_id, text, **fields)
        self.assertEqual(response.verdict.decision, pb.DECISION_APPROVED, response)
        return response.comment

    def assert_status(self, code, call, *args, **kwargs):
        with self.assertRaises(grpc.RpcError) as caught:
            call(*args, timeout=RPC_TIMEOUT, **kwargs)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        return caught.exception

    def list_ids(self, article_id):
        response = self.stub.ListComments(
            pb.ListCommentsRequest(article_id=article_id), timeout=RPC_TIMEOUT)
        return [c.id for c in response.comments]

    # --- SubmitComment -----------------------------------------------------

    def test_submit_approved(self):
        article = self.article("approved")
        response = self.submit(article, "  A calm and reasonable remark.  ",
                               author_name="  Ada  ")
        self.assertEqual(response.verdict.decision, pb.DECISION_APPROVED)
        self.assertFalse(response.replayed)
        comment = response.comment
        self.assertRegex(comment.id, ID_RE)
        self.assertEqual(comment.article_id, article)
        self.assertEqual(comment.author_name, "Ada")  # trimmed
        self.assertEqual(comment.text, "A calm and reasonable remark.")  # trimmed
        self.assertEqual(comment.parent_id, "")
        self.assertEqual(comment.state, pb.COMMENT_STATE_PUBLISHED)
        self.assertGreater(comment.create_time.seconds, time.time() - 300)
        self.assertEqual(self.list_ids(article), [comment.id])

    def test_submit_held(self):
        article = self.article("held")
        response = self.submit(article, "see http://a.com http://b.com http://c.com")
        self.assertEqual(response.verdict.decision, pb.DECISION_HELD, response)
        self.assertIn("spam.too_many_links", [r.code for r in response.verdict.reasons])
        self.assertTrue(response.HasField("comment"))
        self.assertRegex(response.comment.id, ID_RE)
        self.assertEqual(response.comment.state, pb.COMMENT_STATE_HELD)
        # Held comments are invisible to readers.
        self.assert_status(grpc.StatusCode.NOT_FOUND, self.stub.GetComment,
                           pb.GetCommentRequest(comment_id=response.comment.id))
        self.assertEqual(self.list_ids(article), [])
        # ...and cannot be replied to.
        self.assert_status(grpc.StatusCode.FAILED_PRECONDITION, self.submit, article,
                           "A reply to a held comment.", parent_id=response.comment.id)

    def test_submit_rejected(self):
        article = self.article("rejected")
        response = self.submit(article, "fuck you, go kill yourself")
        self.assertEqual(response.verdict.decision, pb.DECISION_REJECTED, response)
        self.assertFalse(response.HasField("comment"))
        self.assertTrue(response.verdict.reasons)
        self.assertIn(pb.FILTER_PROFANITY, [r.filter for r in response.verdict.reasons])
        self.assertEqual(self.list_ids(article), [])

    def test_submit_invalid_argument(self):
        error = self.assert_status(
            grpc.StatusCode.INVALID_ARGUMENT, self.submit, "", "Hello there")
        self.assertIn("article_id", error.details())
        trailers = dict(error.trailing_metadata() or ())
        self.assertIn("grpc-status-details-bin", trailers)  # google.rpc.BadRequest
        self.assertIn(b"article_id", trailers["grpc-status-details-bin"])
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.submit,
                           self.article("invalid"), "Hello there", client_id="")
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.submit,
                           "bad article id!", "Hello there")

    def test_submit_unknown_parent_is_not_found(self):
        self.assert_status(grpc.StatusCode.NOT_FOUND, self.submit, self.article("orphan"),
                           "A reply to nothing.", parent_id=UNKNOWN_ID)

    def test_submit_reply(self):
        article = self.article("reply")
        parent = self.submit_approved(article, "The parent comment.")
        reply = self.submit_approved(article, "A reply to it.", parent_id=parent.id)
        self.assertEqual(reply.parent_id, parent.id)
        self.assertGreater(reply.id, parent.id)
        self.assert_status(grpc.StatusCode.FAILED_PRECONDITION, self.submit,
                           self.article("reply-other"), "Cross-article reply.",
                           parent_id=parent.id)

    def test_submit_idempotent_retry(self):
        article = self.article("idempotent")
        fields = dict(client_id=f"py-{uuid.uuid4().hex}", idempotency_key="key-1")
        first = self.submit(article, "Submitted once, sent twice.", **fields)
        again = self.submit(article, "Submitted once, sent twice.", **fields)
        self.assertFalse(first.replayed)
        self.assertTrue(again.replayed)
        self.assertEqual(again.comment.id, first.comment.id)
        self.assertEqual(self.list_ids(article), [first.comment.id])
        self.assert_status(grpc.StatusCode.FAILED_PRECONDITION, self.submit, article,
                           "A different comment, same key.", **fields)

    # --- CheckComment -------------------------------------------------------

    def test_check(self):
        article = self.article("check")
        rejected = self.stub.CheckComment(pb.CheckCommentRequest(
            text="fuck you, go kill yourself", author_name="Troll"), timeout=RPC_TIMEOUT)
        self.assertEqual(rejected.verdict.decision, pb.DECISION_REJECTED, rejected)
        self.assertTrue(rejected.verdict.censored_text)
        self.assertIn("*", rejected.verdict.censored_text)
        held = self.stub.CheckComment(pb.CheckCommentRequest(
            text="see http://a.com http://b.com http://c.com", author_name="Spammer"),
            timeout=RPC_TIMEOUT)
        self.assertEqual(held.verdict.decision, pb.DECISION_HELD, held)
        clean = self.stub.CheckComment(pb.CheckCommentRequest(
            text="What a lovely day.", author_name="Ada"), timeout=RPC_TIMEOUT)
        self.assertEqual(clean.verdict.decision, pb.DECISION_APPROVED, clean)
        self.assertEqual(clean.verdict.censored_text, "")
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.stub.CheckComment,
                           pb.CheckCommentRequest(text="", author_name="Ada"))
        self.assertEqual(self.list_ids(article), [])

    # --- GetComment ---------------------------------------------------------

    def test_get(self):
        comment = self.submit_approved(self.article("get"), "Fetch me by id.")
        got = self.stub.GetComment(pb.GetCommentRequest(comment_id=comment.id),
                                   timeout=RPC_TIMEOUT)
        self.assertEqual(got.comment, comment)
        self.assert_status(grpc.StatusCode.NOT_FOUND, self.stub.GetComment,
                           pb.GetCommentRequest(comment_id=UNKNOWN_ID))
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.stub.GetComment,
                           pb.GetCommentRequest(comment_id="not-an-id"))

    # --- ListComments -------------------------------------------------------

    def test_list_pagination(self):
        article = self.article("paged")
        submitted = [self.submit_approved(article, f"Comment number {i} of five.").id
                     for i in range(5)]
        self.assertEqual(submitted, sorted(submitted))
        pages, token = [], ""
        for _ in range(10):
            page = self.stub.ListComments(pb.ListCommentsRequest(
                article_id=article, page_size=2, page_token=token), timeout=RPC_TIMEOUT)
            pages.append([c.id for c in page.comments])
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(pages, [submitted[0:2], submitted[2:4], submitted[4:5]])
        # Default page size takes everything; an empty article is an empty list.
        self.assertEqual(self.list_ids(article), submitted)
        self.assertEqual(self.list_ids(self.article("empty")), [])
        # A token of another article, a garbage token, a negative size.
        first = self.stub.ListComments(pb.ListCommentsRequest(
            article_id=article, page_size=2), timeout=RPC_TIMEOUT)
        self.assertTrue(first.next_page_token)
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListComments,
                           pb.ListCommentsRequest(article_id=self.article("other"),
                                                  page_token=first.next_page_token))
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListComments,
                           pb.ListCommentsRequest(article_id=article, page_token="garbage!"))
        self.assert_status(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ListComments,
                           pb.ListCommentsRequest(article_id=article, page_size=-1))

    # --- SubscribeComments --------------------------------------------------

    def open_stream(self, article, after=""):
        """Starts a subscription; returns (call, queue of comments / errors)."""
        call = self.stub.SubscribeComments(pb.SubscribeCommentsRequest(
            article_id=article, after_comment_id=after), timeout=30)
        events = queue.Queue()

        def pump():
            try:
                for event in call:
                    events.put(event.comment if event.HasField("comment") else event)
            except grpc.RpcError as error:
                events.put(error)
            events.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.addCleanup(call.cancel)
        return call, events

    def next_comment(self, events, timeout=5):
        try:
            item = events.get(timeout=timeout)
        except queue.Empty:
            self.fail(f"no stream event within {timeout} s")
        if isinstance(item, grpc.RpcError):
            self.fail(f"stream failed: {item.code()} {item.details()}")
        self.assertIsNotNone(item, "stream ended early")
        self.assertIsInstance(item, pb.Comment, item)
        return item

    def test_subscribe_replays_then_goes_live(self):
        article = self.article("stream")
        first = self.submit_approved(article, "First comment, before the stream.")
        second = self.submit_approved(article, "Second comment, before the stream.")
        self.submit(article, "see http://a.com http://b.com http://c.com")  # held
        self.submit_approved(self.article("stream-other"), "A comment on a different article.")

        _, events = self.open_stream(article, after=first.id)
        self.assertEqual(self.next_comment(events), second)  # replay after the cursor
        live = self.submit_approved(article, "Third comment, while streaming.")
        self.assertEqual(self.next_comment(events), live)
        self.assertTrue(events.empty(), "unexpected extra event")

        # From the very beginning: everything approved, in id order.
        _, events = self.open_stream(article, after="0000000000000000")
        replayed = [self.next_comment(events).id for _ in range(3)]
        self.assertEqual(replayed, [first.id, second.id, live.id])

    def test_subscribe_without_cursor_is_live_only(self):
        article = self.article("live")
        before = self.submit_approved(article, "Before the stream: not replayed.")
        _, events = self.open_stream(article)
        # The client cannot tell when the server has registered the
        # subscription, so submit until the stream carries a comment: the
        # first one must be one submitted after the stream was opened.
        live = {}
        for i in range(10):
            comment = self.submit_approved(article, f"After the stream started, #{i}.")
            live[comment.id] = comment
            try:
                item = events.get(timeout=1)
            except queue.Empty:
                continue
            self.assertIsInstance(item, pb.Comment, item)
            self.assertNotEqual(item.id, before.id, "a comment before the stream was replayed")
            self.assertEqual(item, live.get(item.id), "not a comment submitted while streaming")
            return
        self.fail("no live comment arrived on the stream")

    def test_subscribe_unknown_cursor_is_out_of_range(self):
        _, events = self.open_stream(self.article("range"), after=UNKNOWN_ID)
        item = events.get(timeout=5)
        self.assertIsInstance(item, grpc.RpcError, item)
        self.assertEqual(item.code(), grpc.StatusCode.OUT_OF_RANGE, item.details())

    def test_subscribe_invalid_article(self):
        _, events = self.open_stream("")
        item = events.get(timeout=5)
        self.assertIsInstance(item, grpc.RpcError, item)
        self.assertEqual(item.code(), grpc.StatusCode.INVALID_ARGUMENT, item.details())


def main(argv):
    global ADDRESS
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    ADDRESS = argv[1]
    try:
        generate_client()
    except Exception as error:  # noqa: BLE001 - report and count as a failure
        print(f"not ok - generate the Python client from proto/: {error!r}")
        print("0 passed, 1 failed")
        return 1
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(CommentServiceTest)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    if result.testsRun == 0:
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
