//! Single-use, expiring questionnaire links for patients (no account): stored as token hashes.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{normalize, parse_uuid, with_conn};
use crate::{Store, StoreError, Tx};

/// A link to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewQuestionnaireLink {
    /// `hash_token` of the raw token in the link.
    pub token_hash: String,
    /// Whose answers it collects.
    pub patient_id: Uuid,
    /// The instrument codes it asks for.
    pub instruments: Vec<String>,
    /// The clinician who sent it.
    pub created_by: Uuid,
    /// Sent.
    pub created_at: OffsetDateTime,
    /// Not honoured after.
    pub expires_at: OffsetDateTime,
}

/// A stored link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuestionnaireLink {
    /// Hash of its token.
    pub token_hash: String,
    /// The patient.
    pub patient_id: Uuid,
    /// Instrument codes.
    pub instruments: Vec<String>,
    /// Sender.
    pub created_by: Uuid,
    /// Sent.
    pub created_at: OffsetDateTime,
    /// Expires.
    pub expires_at: OffsetDateTime,
    /// When the answers came back (a link works once).
    pub used_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    token_hash: String,
    patient_id: String,
    instruments: String,
    created_by: String,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
}

impl TryFrom<LinkRow> for QuestionnaireLink {
    type Error = StoreError;
    fn try_from(row: LinkRow) -> Result<QuestionnaireLink, StoreError> {
        Ok(QuestionnaireLink {
            patient_id: parse_uuid("questionnaire_links.patient_id", &row.patient_id)?,
            created_by: parse_uuid("questionnaire_links.created_by", &row.created_by)?,
            instruments: serde_json::from_str(&row.instruments).map_err(|e| StoreError::Corrupt {
                what: "questionnaire_links.instruments",
                detail: e.to_string(),
            })?,
            token_hash: row.token_hash,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        })
    }
}

impl Tx {
    /// Stores a link.
    pub async fn insert_questionnaire_link(&mut self, link: &NewQuestionnaireLink) -> Result<(), StoreError> {
        crate::tokens::check_token_hash(&link.token_hash)?;
        let instruments = serde_json::to_string(&link.instruments).map_err(|e| StoreError::Invalid {
            what: "instruments",
            reason: e.to_string(),
        })?;
        with_conn!(self.conn(), c => {
            sqlx::query(
                "INSERT INTO questionnaire_links (token_hash, patient_id, instruments, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&link.token_hash)
            .bind(link.patient_id.to_string())
            .bind(instruments)
            .bind(link.created_by.to_string())
            .bind(normalize(link.created_at))
            .bind(normalize(link.expires_at))
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_write(e, "questionnaire link", Some(("user", link.created_by.to_string()))))?;
        });
        Ok(())
    }

    /// Marks a link used; false if it was used already (by a concurrent submission, say): a link
    /// works exactly once.
    pub async fn use_questionnaire_link(
        &mut self,
        token_hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(with_conn!(self.conn(), c => {
            sqlx::query("UPDATE questionnaire_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(normalize(at))
                .bind(token_hash)
                .execute(&mut *c)
                .await?
                .rows_affected()
        }) == 1)
    }
}

impl Store {
    /// The link with this hash, used or not, expired or not (the caller says which it accepts).
    pub async fn find_questionnaire_link(
        &self,
        token_hash: &str,
    ) -> Result<Option<QuestionnaireLink>, StoreError> {
        let mut pooled = self.acquire().await?;
        let row: Option<LinkRow> = with_conn!(pooled.conn(), c => {
            sqlx::query_as(
                "SELECT token_hash, patient_id, instruments, created_by, created_at, expires_at, used_at \
                 FROM questionnaire_links WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *c)
            .await?
        });
        row.map(QuestionnaireLink::try_from).transpose()
    }
}
