//! `comments.v1.CommentService`: thin handlers over [`Comments`].

use std::{pin::Pin, sync::Arc};

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use tracing::{Span, field};

use super::{
    convert::{parse_check, parse_page_size, parse_submission},
    pb::{self, comment_service_server::CommentService},
};
use crate::{
    comments::Comments,
    domain::{ArticleId, CommentId},
    error::Error,
    metrics::Metrics,
    peer::{self, TrustedProxies},
    transport::PeerInfo,
};

/// The gRPC face of [`Comments`].
pub struct CommentApi {
    comments: Arc<Comments>,
    trusted_proxies: TrustedProxies,
    max_subscriptions_per_connection: usize,
    metrics: Arc<Metrics>,
}

impl CommentApi {
    pub fn new(
        comments: Arc<Comments>,
        trusted_proxies: TrustedProxies,
        max_subscriptions_per_connection: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            comments,
            trusted_proxies,
            max_subscriptions_per_connection,
            metrics,
        }
    }
}

type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeCommentsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CommentService for CommentApi {
    #[tracing::instrument(
        name = "SubmitComment",
        skip_all,
        fields(article_id = %request.get_ref().article_id, decision = field::Empty, comment_id = field::Empty)
    )]
    async fn submit_comment(
        &self,
        request: Request<pb::SubmitCommentRequest>,
    ) -> Result<Response<pb::SubmitCommentResponse>, Status> {
        let submission = parse_submission(request.get_ref(), self.comments.max_text_chars())?;
        let caller = peer::caller(&request, &self.trusted_proxies);
        let outcome = self.comments.submit(submission, caller).await?;
        let span = Span::current();
        span.record("decision", field::debug(outcome.verdict.decision));
        if let Some(comment) = &outcome.comment {
            span.record("comment_id", field::display(comment.id));
        }
        tracing::info!(replayed = outcome.replayed, "comment screened");
        Ok(Response::new(outcome.into()))
    }

    #[tracing::instrument(name = "CheckComment", skip_all, fields(decision = field::Empty))]
    async fn check_comment(
        &self,
        request: Request<pb::CheckCommentRequest>,
    ) -> Result<Response<pb::CheckCommentResponse>, Status> {
        let (author_name, text) = parse_check(request.get_ref(), self.comments.max_text_chars())?;
        let caller = peer::caller(&request, &self.trusted_proxies);
        let verdict = self.comments.check(author_name, text, caller).await?;
        Span::current().record("decision", field::debug(verdict.decision));
        Ok(Response::new(pb::CheckCommentResponse {
            verdict: Some(verdict.into()),
        }))
    }

    #[tracing::instrument(name = "GetComment", skip_all, fields(comment_id = %request.get_ref().comment_id))]
    async fn get_comment(
        &self,
        request: Request<pb::GetCommentRequest>,
    ) -> Result<Response<pb::GetCommentResponse>, Status> {
        let id =
            CommentId::parse("comment_id", &request.get_ref().comment_id).map_err(Error::from)?;
        let comment = self.comments.get(id)?;
        Ok(Response::new(pb::GetCommentResponse {
            comment: Some(comment.into()),
        }))
    }

    #[tracing::instrument(name = "ListComments", skip_all, fields(article_id = %request.get_ref().article_id))]
    async fn list_comments(
        &self,
        request: Request<pb::ListCommentsRequest>,
    ) -> Result<Response<pb::ListCommentsResponse>, Status> {
        let request = request.into_inner();
        let article = ArticleId::parse(&request.article_id).map_err(Error::from)?;
        let page_size = parse_page_size(request.page_size)?;
        let page = self
            .comments
            .list(&article, page_size, &request.page_token)?;
        Ok(Response::new(pb::ListCommentsResponse {
            comments: page.comments.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    type SubscribeCommentsStream = EventStream;

    #[tracing::instrument(
        name = "SubscribeComments",
        skip_all,
        fields(article_id = %request.get_ref().article_id, after = %request.get_ref().after_comment_id)
    )]
    async fn subscribe_comments(
        &self,
        request: Request<pb::SubscribeCommentsRequest>,
    ) -> Result<Response<Self::SubscribeCommentsStream>, Status> {
        // Counted on its connection while the stream lives (calls made
        // in-process have no connection).
        let slot = match request.extensions().get::<PeerInfo>() {
            Some(PeerInfo(connection)) => Some(
                connection
                    .open_subscription(self.max_subscriptions_per_connection)
                    .ok_or_else(|| {
                        self.metrics.refused_at_capacity("subscriptions_per_connection");
                        Status::resource_exhausted(format!(
                            "this connection has {} subscriptions open, the limit; open another connection or close one",
                            self.max_subscriptions_per_connection
                        ))
                    })?,
            ),
            None => None,
        };
        let request = request.into_inner();
        let article = ArticleId::parse(&request.article_id).map_err(Error::from);
        let after = CommentId::parse_optional("after_comment_id", &request.after_comment_id)
            .map_err(Error::from);
        let (article, after) = match (article, after) {
            (Ok(article), Ok(after)) => (article, after),
            (Err(Error::InvalidArgument(mut a)), Err(Error::InvalidArgument(b))) => {
                a.extend(b);
                return Err(Error::InvalidArgument(a).into());
            }
            (Err(error), _) | (_, Err(error)) => return Err(error.into()),
        };
        let events = self.comments.subscribe(article, after)?;
        let stream = ReceiverStream::new(events).map(move |event| {
            let _slot = &slot;
            event
                .map(|event| pb::SubscribeCommentsResponse::from(Arc::unwrap_or_clone(event)))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
