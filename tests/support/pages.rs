//! An article's whole listing, page by page (shared by the test crates).

use commentd::api::pb::{self, comment_service_client::CommentServiceClient};
use tonic::transport::Channel;

/// Every comment of `article`, oldest first, following the page tokens.
pub async fn list_all(
    client: &mut CommentServiceClient<Channel>,
    article: &str,
) -> Vec<pb::Comment> {
    let mut comments = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_comments(pb::ListCommentsRequest {
                article_id: article.to_owned(),
                page_size: 200,
                page_token,
            })
            .await
            .expect("list succeeds")
            .into_inner();
        comments.extend(page.comments);
        if page.next_page_token.is_empty() {
            return comments;
        }
        page_token = page.next_page_token;
    }
}
