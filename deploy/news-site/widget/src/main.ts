// The news site's comment widget: a form to post a comment, the approved
// comments of the article (replies indented), kept live through
// SubscribeComments. Talks gRPC-web to commentd, either through the site's
// own origin (the nginx proxy) or directly (commentd with CORS).
//
// Mount point: <section data-commentd-widget data-article-id="..."
//   data-api-base="https://comments.example">. data-api-base defaults to the
// page's own origin; data-article-id defaults to the id of the page's
// first <article id=...>.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  CommentService,
  Decision,
  type Comment,
  type SubmitCommentResponse,
} from "../gen/comments/v1/comments_pb";

type Api = Client<typeof CommentService>;

const CLIENT_ID_KEY = "commentd.client_id";
const NAME_KEY = "commentd.author_name";

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function randomId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function storage(key: string, fallback: () => string): string {
  try {
    let v = localStorage.getItem(key);
    if (!v) {
      v = fallback();
      if (v) localStorage.setItem(key, v);
    }
    return v;
  } catch {
    return fallback();
  }
}

function remember(key: string, value: string) {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode: nothing to remember */
  }
}

/** Plain-words description of a failed call. */
function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.ResourceExhausted:
      return "You are posting too fast. Please wait a moment and try again.";
    case Code.InvalidArgument:
      return `Please check your comment: ${e.rawMessage}`;
    case Code.FailedPrecondition:
      return `Your comment could not be posted: ${e.rawMessage}`;
    case Code.NotFound:
      return "The comment you replied to no longer exists.";
    case Code.Unavailable:
    case Code.Unknown:
    case Code.Internal:
      return "The comment service is not reachable right now. Please try again later.";
    default:
      return `Your comment could not be posted: ${e.rawMessage}`;
  }
}

class CommentWidget {
  private readonly api: Api;
  private readonly articleId: string;
  private readonly clientId: string;
  /** Rendered comments by id: their <li>. */
  private readonly items = new Map<string, HTMLLIElement>();
  /** Position of the last stream event seen: the resume cursor. */
  private cursor = "";
  private replyTo: Comment | null = null;

  private readonly list: HTMLUListElement;
  private readonly empty: HTMLParagraphElement;
  private readonly count: HTMLSpanElement;
  private readonly liveState: HTMLParagraphElement;
  private readonly form: HTMLFormElement;
  private readonly nameInput: HTMLInputElement;
  private readonly textInput: HTMLTextAreaElement;
  private readonly submitButton: HTMLButtonElement;
  private readonly status: HTMLDivElement;
  private readonly replyBanner: HTMLParagraphElement;

  constructor(private readonly root: HTMLElement, baseUrl: string, articleId: string) {
    this.articleId = articleId;
    this.api = createClient(CommentService, createGrpcWebTransport({ baseUrl }));
    this.clientId = storage(CLIENT_ID_KEY, randomId);

    const uid = Math.random().toString(36).slice(2, 8);
    this.count = el("span", { class: "cw-count" });
    this.nameInput = el("input", {
      id: `cw-name-${uid}`,
      name: "author_name",
      type: "text",
      maxlength: "64",
      required: "",
      autocomplete: "nickname",
    });
    this.nameInput.value = storage(NAME_KEY, () => "");
    this.textInput = el("textarea", {
      id: `cw-text-${uid}`,
      name: "text",
      rows: "4",
      maxlength: "5000",
      required: "",
    });
    this.submitButton = el("button", { type: "submit" }, "Post comment");
    this.status = el("div", { class: "cw-status", role: "status", "aria-live": "polite" });
    this.replyBanner = el("p", { class: "cw-replying", hidden: "" });
    this.form = el(
      "form",
      { class: "cw-form", novalidate: "" },
      el("h3", {}, "Join the discussion"),
      this.replyBanner,
      el("label", { for: this.nameInput.id }, "Your name"),
      this.nameInput,
      el("label", { for: this.textInput.id }, "Your comment"),
      this.textInput,
      el("div", { class: "cw-actions" }, this.submitButton),
      this.status,
    );
    this.list = el("ul", { class: "cw-list", "aria-label": "Comments" });
    this.empty = el("p", { class: "cw-empty" }, "No comments yet. Be the first!");
    this.liveState = el("p", { class: "cw-live", "aria-live": "polite" }, "Loading comments…");

    root.replaceChildren(
      el("h2", {}, "Comments ", this.count),
      this.form,
      this.liveState,
      this.empty,
      this.list,
    );
    root.classList.add("commentd-widget");
    this.updateCount();

    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.submit();
    });
  }

  start() {
    void this.follow();
  }

  // ---- rendering -------------------------------------------------------

  private updateCount() {
    const n = this.items.size;
    this.count.textContent = `(${n})`;
    this.empty.hidden = n > 0;
  }

  private addComment(c: Comment) {
    if (this.items.has(c.id)) return;
    const when = c.createTime ? timestampDate(c.createTime) : null;
    const replyButton = el("button", { type: "button", class: "cw-reply" }, "Reply");
    replyButton.addEventListener("click", () => this.startReply(c));
    const li = el(
      "li",
      { class: "cw-comment", "data-comment-id": c.id },
      el(
        "article",
        {},
        el(
          "header",
          {},
          el("strong", { class: "cw-author" }, c.authorName),
          when
            ? el("time", { datetime: when.toISOString() }, " · " + when.toLocaleString())
            : "",
        ),
        el("p", { class: "cw-text" }, c.text),
        replyButton,
      ),
      el("ul", { class: "cw-replies" }),
    );
    const parent = c.parentId ? this.items.get(c.parentId) : undefined;
    const target = parent ? parent.querySelector<HTMLUListElement>(":scope > ul.cw-replies")! : this.list;
    target.append(li);
    this.items.set(c.id, li);
    this.updateCount();
  }

  private removeComment(id: string) {
    const li = this.items.get(id);
    if (!li) return;
    this.items.delete(id);
    // Keep the replies of a removed comment: they take its place.
    const replies = li.querySelector<HTMLUListElement>(":scope > ul.cw-replies")!;
    li.replaceWith(...Array.from(replies.children));
    if (this.replyTo?.id === id) this.cancelReply();
    this.updateCount();
  }

  private startReply(c: Comment) {
    this.replyTo = c;
    const cancel = el("button", { type: "button", class: "cw-cancel" }, "Cancel reply");
    cancel.addEventListener("click", () => this.cancelReply());
    this.replyBanner.replaceChildren(`Replying to ${c.authorName} `, cancel);
    this.replyBanner.hidden = false;
    this.textInput.focus();
  }

  private cancelReply() {
    this.replyTo = null;
    this.replyBanner.hidden = true;
    this.replyBanner.replaceChildren();
  }

  private showStatus(kind: "approved" | "held" | "rejected" | "error" | "pending", title: string, details: string[] = []) {
    this.status.dataset.kind = kind;
    const children: (Node | string)[] = [el("p", { class: "cw-status-title" }, title)];
    if (details.length > 0) {
      children.push(el("ul", {}, ...details.map((d) => el("li", {}, d))));
    }
    this.status.replaceChildren(...children);
  }

  // ---- submitting ------------------------------------------------------

  private async submit() {
    const authorName = this.nameInput.value.trim();
    const text = this.textInput.value.trim();
    if (!authorName) {
      this.showStatus("error", "Please enter your name.");
      this.nameInput.focus();
      return;
    }
    if (!text) {
      this.showStatus("error", "Please write a comment first.");
      this.textInput.focus();
      return;
    }
    remember(NAME_KEY, authorName);
    this.submitButton.disabled = true;
    this.showStatus("pending", "Posting…");
    try {
      const res = await this.api.submitComment({
        articleId: this.articleId,
        authorName,
        text,
        parentId: this.replyTo?.id ?? "",
        clientId: this.clientId,
        idempotencyKey: randomId(),
      });
      this.showVerdict(res);
    } catch (err) {
      this.showStatus("error", describeError(err));
    } finally {
      this.submitButton.disabled = false;
    }
  }

  private showVerdict(res: SubmitCommentResponse) {
    const v = res.verdict;
    // The findings that decided it (an approved comment's are informational).
    const all = v?.reasons ?? [];
    const deciding = all.filter((r) => r.decision === v?.decision);
    const reasons = (deciding.length ? deciding : all).map((r) => r.message).filter((m) => m);
    const because = reasons.length === 1 ? " Reason:" : reasons.length > 1 ? " Reasons:" : "";
    switch (v?.decision) {
      case Decision.APPROVED:
        this.showStatus("approved", "Thanks! Your comment is published.");
        if (res.comment) this.addComment(res.comment);
        this.textInput.value = "";
        this.cancelReply();
        break;
      case Decision.HELD:
        this.showStatus(
          "held",
          "Thanks! Your comment is held for review by a moderator and will appear once approved." + because,
          reasons,
        );
        this.textInput.value = "";
        this.cancelReply();
        break;
      case Decision.REJECTED:
        this.showStatus(
          "rejected",
          "Your comment was rejected and not published." + because,
          reasons,
        );
        break;
      default:
        this.showStatus("error", "The comment service gave an unexpected answer. Please try again.");
    }
  }

  // ---- listing and following -------------------------------------------

  private async loadAll(): Promise<void> {
    let pageToken = "";
    do {
      const page = await this.api.listComments({ articleId: this.articleId, pageSize: 200, pageToken });
      for (const c of page.comments) {
        this.addComment(c);
        if (c.id > this.cursor) this.cursor = c.id;
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Lists, then streams forever, resuming from the cursor after a drop. */
  private async follow() {
    let delay = 1000;
    let listed = false;
    for (;;) {
      try {
        if (!listed) {
          await this.loadAll();
          listed = true;
        }
        const needRelist = this.cursor === "";
        const stream = this.api.subscribeComments(
          { articleId: this.articleId, afterCommentId: this.cursor },
          {
            // With no cursor, comments approved between the list and the
            // stream's start would be missed: list again once it is open.
            onHeader: () => {
              this.liveState.textContent = "Live: new comments appear automatically.";
              this.liveState.dataset.state = "live";
              if (needRelist) void this.loadAll().catch(() => {});
            },
          },
        );
        for await (const ev of stream) {
          delay = 1000;
          if (ev.event.case === "comment") {
            this.addComment(ev.event.value);
            this.cursor = ev.event.value.id;
          } else if (ev.event.case === "commentRemoved") {
            this.removeComment(ev.event.value.commentId);
            this.cursor = ev.event.value.cursor;
          }
        }
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.OutOfRange) {
          // The server does not know our cursor (its data was reset): start over.
          this.items.clear();
          this.list.replaceChildren();
          this.cursor = "";
          listed = false;
        }
      }
      this.liveState.textContent = listed
        ? "Reconnecting to live comments…"
        : "Comments could not be loaded. Retrying…";
      this.liveState.dataset.state = "reconnecting";
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }
}

function mount() {
  const roots = document.querySelectorAll<HTMLElement>("[data-commentd-widget]");
  roots.forEach((root) => {
    const baseUrl = (root.dataset.apiBase || window.location.origin).replace(/\/+$/, "");
    const articleId = root.dataset.articleId || document.querySelector("article[id]")?.id || "";
    if (!articleId) {
      root.textContent = "Comments are unavailable: no article id.";
      return;
    }
    new CommentWidget(root, baseUrl, articleId).start();
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
