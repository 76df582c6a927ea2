//! Messages about orchestrators (recommendations, monitoring notes) and their delivery.

use moolai_store::{Actor, MessageQuery, MessageRecord, MessageStatus, NewMessage, StoreError};
use serde_json::json;
use sqlx::{Postgres, QueryBuilder};

use crate::error::db_error;
use crate::rows::MessageRow;
use crate::sql::MESSAGE_COLUMNS;
use crate::{PgStore, audit};

/// `msg_` + a UUIDv7: unique without coordination and ordered by creation time.
fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

impl PgStore {
    pub(crate) async fn create_message_tx(
        &self,
        new: &NewMessage,
    ) -> Result<MessageRecord, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;

        // The organization is copied from the orchestrator so the message keeps it after the
        // orchestrator is deregistered.
        let row: Option<MessageRow> = sqlx::query_as(
            "WITH i AS ( \
                 SELECT orchestrator_id, organization_id, is_independent \
                 FROM orchestrator_instances WHERE orchestrator_id = $2), \
             m AS ( \
                 INSERT INTO orchestrator_messages (id, orchestrator_id, organization_id, \
                     message_type, content, message_metadata, source) \
                 SELECT $1, i.orchestrator_id, i.organization_id, $3, $4, $5, $6 FROM i \
                 RETURNING *) \
             SELECT m.id, m.orchestrator_id, m.organization_id, m.message_type, m.content, \
                 m.message_metadata, m.status, m.source, \
                 i.is_independent AS orchestrator_is_independent, m.delivered_at, \
                 m.created_at, m.updated_at \
             FROM m JOIN i ON i.orchestrator_id = m.orchestrator_id",
        )
        .bind(new_message_id())
        .bind(&new.orchestrator_id)
        .bind(&new.message_type)
        .bind(&new.content)
        .bind(&new.metadata)
        .bind(&new.source)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!(
                "orchestrator {}",
                new.orchestrator_id
            )));
        };
        let record = MessageRecord::try_from(row)?;

        // Messages sent up by orchestrators are not operator actions.
        if new.source == "api" {
            audit::insert(
                &mut tx,
                &audit::entry(
                    &new.actor,
                    "message.create",
                    format!("message:{}", record.id),
                    record.organization_id.clone(),
                    json!({
                        "orchestrator_id": record.orchestrator_id,
                        "message_type": record.message_type,
                    }),
                ),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn messages(
        &self,
        q: &MessageQuery,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(MESSAGE_COLUMNS).push(
            " FROM orchestrator_messages m \
             LEFT JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id \
             WHERE TRUE",
        );
        if let Some(status) = q.status {
            qb.push(" AND m.status = ").push_bind(status.as_str());
        }
        if let Some(message_type) = &q.message_type {
            qb.push(" AND m.message_type = ")
                .push_bind(message_type.clone());
        }
        if let Some(orchestrator_id) = &q.orchestrator_id {
            qb.push(" AND m.orchestrator_id = ")
                .push_bind(orchestrator_id.clone());
        }
        if let Some(organization_id) = &q.organization_id {
            qb.push(" AND m.organization_id = ")
                .push_bind(organization_id.clone());
        }
        crate::sql::push_scope(&mut qb, "m.organization_id", q.scope.as_deref());
        qb.push(" ORDER BY m.created_at DESC, m.id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows: Vec<MessageRow> = qb
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub(crate) async fn message(
        &self,
        message_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(MESSAGE_COLUMNS)
            .push(
                " FROM orchestrator_messages m \
                 LEFT JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id \
                 WHERE m.id = ",
            )
            .push_bind(message_id.to_owned());
        let row: Option<MessageRow> = qb
            .build_query_as()
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) async fn update_message_status_tx(
        &self,
        message_id: &str,
        status: MessageStatus,
        actor: &Actor,
    ) -> Result<MessageRecord, StoreError> {
        if status == MessageStatus::Pending {
            return Err(StoreError::Invalid(
                "a message can only be accepted or dismissed".into(),
            ));
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row: Option<MessageRow> = sqlx::query_as(
            "WITH m AS ( \
                 UPDATE orchestrator_messages SET status = $2, updated_at = now() \
                 WHERE id = $1 AND status = 'pending' RETURNING *) \
             SELECT m.id, m.orchestrator_id, m.organization_id, m.message_type, m.content, \
                 m.message_metadata, m.status, m.source, \
                 COALESCE(i.is_independent, FALSE) AS orchestrator_is_independent, \
                 m.delivered_at, m.created_at, m.updated_at \
             FROM m LEFT JOIN orchestrator_instances i ON i.orchestrator_id = m.orchestrator_id",
        )
        .bind(message_id)
        .bind(status.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;

        let Some(row) = row else {
            let current: Option<String> =
                sqlx::query_scalar("SELECT status FROM orchestrator_messages WHERE id = $1")
                    .bind(message_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
            return Err(match current {
                Some(current) => StoreError::Conflict(format!("message is already {current}")),
                None => StoreError::NotFound(format!("message {message_id}")),
            });
        };
        let record = MessageRecord::try_from(row)?;

        audit::insert(
            &mut tx,
            &audit::entry(
                actor,
                "message.status",
                format!("message:{message_id}"),
                record.organization_id.clone(),
                json!({ "status": status.as_str() }),
            ),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub(crate) async fn mark_message_delivered(
        &self,
        message_id: &str,
        session_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orchestrator_messages SET delivered_at = now(), delivered_session_id = $2, \
                 updated_at = now() \
             WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(message_id)
        .bind(session_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
