//! `comments.v1.ModerationService`: thin handlers over [`Moderators`].
//! Authentication happens before these run (an interceptor, see
//! [`crate::auth`]), which leaves the moderator's name in the extensions.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    convert::{from_timestamp, parse_page_size},
    pb::{self, moderation_service_server::ModerationService},
};
use crate::{
    auth::Moderator,
    domain::{
        ArticleId, ArticleSettings, AuditFilter, ClientId, CommentId, ModerationAction,
        ModerationMode, TermEffect,
    },
    error::Error,
    moderators::Moderators,
};

/// The gRPC face of [`Moderators`].
pub struct ModerationApi {
    moderators: Arc<Moderators>,
}

impl ModerationApi {
    pub fn new(moderators: Arc<Moderators>) -> Self {
        Self { moderators }
    }
}

fn actor<T>(request: &Request<T>) -> Result<String, Error> {
    request
        .extensions()
        .get::<Moderator>()
        .map(|moderator| moderator.0.clone())
        .ok_or_else(|| Error::Unauthenticated("not authenticated".to_owned()))
}

fn article_id(raw: &str) -> Result<ArticleId, Error> {
    Ok(ArticleId::parse(raw)?)
}

#[tonic::async_trait]
impl ModerationService for ModerationApi {
    #[tracing::instrument(name = "ListHeldComments", skip_all)]
    async fn list_held_comments(
        &self,
        request: Request<pb::ListHeldCommentsRequest>,
    ) -> Result<Response<pb::ListHeldCommentsResponse>, Status> {
        actor(&request)?;
        let request = request.into_inner();
        let article = if request.article_id.is_empty() {
            None
        } else {
            Some(article_id(&request.article_id)?)
        };
        let page = self.moderators.held(
            article.as_ref(),
            parse_page_size(request.page_size)?,
            &request.page_token,
        )?;
        Ok(Response::new(pb::ListHeldCommentsResponse {
            held_comments: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "ModerateComment", skip_all, fields(comment_id = %request.get_ref().comment_id, actor))]
    async fn moderate_comment(
        &self,
        request: Request<pb::ModerateCommentRequest>,
    ) -> Result<Response<pb::ModerateCommentResponse>, Status> {
        let actor = actor(&request)?;
        tracing::Span::current().record("actor", actor.as_str());
        let request = request.into_inner();
        let id = CommentId::parse("comment_id", &request.comment_id).map_err(Error::from)?;
        let action = match request.action() {
            pb::Action::Approve => ModerationAction::Approve,
            pb::Action::Reject => ModerationAction::Reject,
            pb::Action::Remove => ModerationAction::Remove,
            pb::Action::Unspecified => {
                return Err(Error::invalid("action", "must be APPROVE, REJECT or REMOVE").into());
            }
        };
        let comment = self
            .moderators
            .moderate(id, action, &actor, &request.note)
            .await?;
        tracing::info!(?action, "comment moderated");
        Ok(Response::new(pb::ModerateCommentResponse {
            comment: Some(comment.into()),
        }))
    }

    #[tracing::instrument(name = "UpdateArticle", skip_all, fields(article_id = %request.get_ref().article_id))]
    async fn update_article(
        &self,
        request: Request<pb::UpdateArticleRequest>,
    ) -> Result<Response<pb::UpdateArticleResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let article = article_id(&request.article_id)?;
        let settings = request.settings.unwrap_or_default();
        let settings = ArticleSettings {
            comments_closed: settings.comments_closed,
            moderation_mode: match settings.moderation_mode() {
                pb::ModerationMode::Pre => ModerationMode::Pre,
                pb::ModerationMode::Post | pb::ModerationMode::Unspecified => ModerationMode::Post,
            },
            auto_close_at: settings
                .auto_close_time
                .map(|t| from_timestamp("settings.auto_close_time", t))
                .transpose()?,
            newcomer_approvals_required: settings.newcomer_approvals_required,
        };
        let settings = self
            .moderators
            .update_article(&article, settings, &actor)
            .await?;
        Ok(Response::new(pb::UpdateArticleResponse {
            article_id: article.as_str().to_owned(),
            settings: Some(settings.into()),
        }))
    }

    #[tracing::instrument(name = "GetArticle", skip_all, fields(article_id = %request.get_ref().article_id))]
    async fn get_article(
        &self,
        request: Request<pb::GetArticleRequest>,
    ) -> Result<Response<pb::GetArticleResponse>, Status> {
        actor(&request)?;
        let article = article_id(&request.get_ref().article_id)?;
        let settings = self.moderators.article(&article)?;
        Ok(Response::new(pb::GetArticleResponse {
            article_id: article.as_str().to_owned(),
            settings: Some(settings.into()),
        }))
    }

    #[tracing::instrument(name = "AddTerms", skip_all)]
    async fn add_terms(
        &self,
        request: Request<pb::AddTermsRequest>,
    ) -> Result<Response<pb::AddTermsResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let effect = match request.effect() {
            pb::TermEffect::Hold => TermEffect::Hold,
            pb::TermEffect::Reject => TermEffect::Reject,
            pb::TermEffect::Allow => TermEffect::Allow,
            pb::TermEffect::Unspecified => {
                return Err(Error::invalid("effect", "must be HOLD, REJECT or ALLOW").into());
            }
        };
        let terms = self
            .moderators
            .add_terms(&request.terms, effect, &actor)
            .await?;
        Ok(Response::new(pb::AddTermsResponse {
            terms: terms.into_iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(name = "RemoveTerms", skip_all)]
    async fn remove_terms(
        &self,
        request: Request<pb::RemoveTermsRequest>,
    ) -> Result<Response<pb::RemoveTermsResponse>, Status> {
        let actor = actor(&request)?;
        let removed = self
            .moderators
            .remove_terms(&request.get_ref().terms, &actor)
            .await?;
        Ok(Response::new(pb::RemoveTermsResponse {
            removed_count: i32::try_from(removed).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(name = "ListTerms", skip_all)]
    async fn list_terms(
        &self,
        request: Request<pb::ListTermsRequest>,
    ) -> Result<Response<pb::ListTermsResponse>, Status> {
        actor(&request)?;
        let terms = self.moderators.terms()?;
        Ok(Response::new(pb::ListTermsResponse {
            terms: terms.into_iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(name = "BanClient", skip_all)]
    async fn ban_client(
        &self,
        request: Request<pb::BanClientRequest>,
    ) -> Result<Response<pb::BanClientResponse>, Status> {
        let actor = actor(&request)?;
        let request = request.into_inner();
        let client = ClientId::parse(&request.client_id).map_err(Error::from)?;
        let expires_at = request
            .expire_time
            .map(|t| from_timestamp("expire_time", t))
            .transpose()?;
        let (ban, removed) = self
            .moderators
            .ban(
                client,
                &request.reason,
                expires_at,
                request.remove_comments,
                &actor,
            )
            .await?;
        tracing::info!(removed = removed.len(), "client banned");
        Ok(Response::new(pb::BanClientResponse {
            ban: Some(ban.into()),
            removed_comment_ids: removed.iter().map(ToString::to_string).collect(),
        }))
    }

    #[tracing::instrument(name = "UnbanClient", skip_all)]
    async fn unban_client(
        &self,
        request: Request<pb::UnbanClientRequest>,
    ) -> Result<Response<pb::UnbanClientResponse>, Status> {
        let actor = actor(&request)?;
        let client = ClientId::parse(&request.get_ref().client_id).map_err(Error::from)?;
        self.moderators.unban(&client, &actor).await?;
        Ok(Response::new(pb::UnbanClientResponse {}))
    }

    #[tracing::instrument(name = "ListBans", skip_all)]
    async fn list_bans(
        &self,
        request: Request<pb::ListBansRequest>,
    ) -> Result<Response<pb::ListBansResponse>, Status> {
        actor(&request)?;
        let bans = self.moderators.bans()?;
        Ok(Response::new(pb::ListBansResponse {
            bans: bans.into_iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(name = "ListAuditEvents", skip_all)]
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        actor(&request)?;
        let request = request.into_inner();
        let filter = match (request.article_id.is_empty(), request.comment_id.is_empty()) {
            (true, true) => AuditFilter::All,
            (false, true) => AuditFilter::Article(article_id(&request.article_id)?),
            (true, false) => AuditFilter::Comment(
                CommentId::parse("comment_id", &request.comment_id).map_err(Error::from)?,
            ),
            (false, false) => {
                return Err(Error::invalid(
                    "comment_id",
                    "give article_id or comment_id, not both",
                )
                .into());
            }
        };
        let page = self.moderators.audit(
            filter,
            parse_page_size(request.page_size)?,
            &request.page_token,
        )?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.items.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}
