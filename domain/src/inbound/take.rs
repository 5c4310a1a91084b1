//! A webhook's events taken whole, so nothing accepted is lost: each event
//! is handled, or kept in the local spool when the database is away, and
//! the request is recorded in the webhook audit log (or spooled). The
//! server's routes only check the signature, parse the request and answer
//! (a 5xx only when an event could be neither stored nor spooled, so the
//! provider retries it).

use std::collections::BTreeMap;

use super::*;

/// Write the request's audit row; if the database is away, spool it with
/// `payload` instead. False only when neither worked.
pub async fn record_or_spool(core: &Core, rec: WebhookRecord, payload: SpooledPayload) -> bool {
    match record_webhook(&core.db.conn, &rec, false, core.now()).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "webhook audit: database unavailable, spooling");
            spool_logged(core, rec, payload).await
        }
    }
}

/// Spool an event whose handling hit a database error. False when the
/// spool could not be written either.
pub async fn spool_logged(core: &Core, record: WebhookRecord, event: SpooledPayload) -> bool {
    match spool(core, &SpooledEvent { record, event }).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "could not write the webhook spool");
            false
        }
    }
}

/// A Twilio status callback's form (`MessageSid` or `SmsSid`,
/// `MessageStatus` or `SmsStatus`, `ErrorCode`, `ErrorMessage`, `Price`,
/// `PriceUnit`) as a report; `mid` is Heimdall's id from the callback URL.
/// `None` without a sid or a status.
pub fn twilio_status_report(
    form: &BTreeMap<String, String>,
    mid: Option<String>,
) -> Option<StatusReport> {
    let status = form
        .get("MessageStatus")
        .or_else(|| form.get("SmsStatus"))?;
    let sid = form.get("MessageSid").or_else(|| form.get("SmsSid"))?;
    Some(StatusReport {
        message_id: mid,
        provider_sid: Some(sid.clone()),
        status: status.clone(),
        error_code: form.get("ErrorCode").and_then(|c| c.parse().ok()),
        error_message: form.get("ErrorMessage").cloned(),
        price: form.get("Price").cloned().filter(|p| !p.is_empty()),
        price_unit: form.get("PriceUnit").cloned().filter(|p| !p.is_empty()),
        source: "twilio".into(),
    })
}

/// What became of a status report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Applied (or recorded), first time.
    Accepted,
    /// Seen before.
    Duplicate,
    /// The database was away: kept in the local spool.
    Spooled,
    /// Neither the database nor the spool took it: the provider must retry.
    Lost,
}

/// Handle one status report and record the request (`record(verdict)`
/// builds its audit row); spool the report when the database is away.
pub async fn take_status(
    core: &Core,
    report: StatusReport,
    record: impl Fn(&str) -> WebhookRecord,
) -> Taken {
    match status_or_spool(core, report, || record("accepted")).await {
        Ok(first) => {
            let verdict = if first { "accepted" } else { "duplicate" };
            record_or_spool(core, record(verdict), SpooledPayload::None).await;
            if first {
                Taken::Accepted
            } else {
                Taken::Duplicate
            }
        }
        Err(true) => Taken::Spooled,
        Err(false) => Taken::Lost,
    }
}

/// Apply one status report (`Ok(first time)`); when the database is away,
/// spool it with the audit row `record()` builds (`Err(whether the spool
/// took it)`).
async fn status_or_spool(
    core: &Core,
    report: StatusReport,
    record: impl FnOnce() -> WebhookRecord,
) -> Result<bool, bool> {
    let data = StatusReportData::from(&report);
    match handle_status(core, report).await {
        Ok(first) => Ok(first),
        Err(e) => {
            tracing::error!(error = %e, "status report: database unavailable, spooling");
            Err(spool_logged(core, record(), SpooledPayload::Status(data)).await)
        }
    }
}

/// Take Meta's events of one request: a new messaging limit (the tier),
/// each message (marked read at Meta when `HEIMDALL_META_READ_RECEIPTS`
/// asks), each status; record the request. `record(verdict, event id)`
/// builds an audit row. False when some event could be neither stored nor
/// spooled.
pub async fn take_meta_events(
    core: &Core,
    events: MetaEvents,
    record: impl Fn(&str, Option<String>) -> WebhookRecord,
) -> bool {
    if let Some(limit) = events.tier_limit {
        if let Err(e) = set_tier_limit(core, limit, "meta:business_capability_update").await {
            tracing::error!(error = %e, "could not store the new messaging limit");
        }
    }
    let mut taken_all = true;
    for msg in events.messages {
        let wamid = msg.provider_message_id.clone();
        match handle_message(core, msg.clone()).await {
            Ok(InboundOutcome::Stored { .. }) => {
                if core.settings.meta_read_receipts {
                    if let Some(client) = core.providers.meta.clone() {
                        tokio::spawn(async move {
                            if let Err(e) = client.mark_as_read(&wamid).await {
                                tracing::warn!(error = %e, "could not mark a message read");
                            }
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(InboundError::Db(e)) => {
                tracing::error!(error = %e, "meta message: database unavailable, spooling");
                taken_all &= spool_logged(
                    core,
                    record("accepted", Some(wamid)),
                    SpooledPayload::Message(msg),
                )
                .await;
            }
            Err(InboundError::Malformed(why)) => tracing::warn!(%why, "meta message skipped"),
        }
    }
    for st in events.statuses {
        if let Err(kept) = status_or_spool(core, st, || record("accepted", None)).await {
            taken_all &= kept;
        }
    }
    record_or_spool(core, record("accepted", None), SpooledPayload::None).await;
    taken_all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_twilio_status_form_reads_as_a_report() {
        let r = twilio_status_report(
            &form(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "63016"),
                ("ErrorMessage", "outside the window"),
                ("Price", ""),
                ("PriceUnit", "USD"),
            ]),
            Some("msg-1".into()),
        )
        .unwrap();
        assert_eq!(r.message_id.as_deref(), Some("msg-1"));
        assert_eq!(r.provider_sid.as_deref(), Some("SM1"));
        assert_eq!(r.status, "undelivered");
        assert_eq!(r.error_code, Some(63016));
        assert_eq!(r.price, None, "an empty price is no price");
        assert_eq!(r.price_unit.as_deref(), Some("USD"));
        assert_eq!(r.source, "twilio");
        // The older SMS names.
        let sms =
            twilio_status_report(&form(&[("SmsSid", "SM2"), ("SmsStatus", "sent")]), None).unwrap();
        assert_eq!(
            (sms.provider_sid.as_deref(), sms.status.as_str()),
            (Some("SM2"), "sent")
        );
        // Without a sid or a status: nothing to apply.
        assert!(twilio_status_report(&form(&[("MessageSid", "SM3")]), None).is_none());
        assert!(twilio_status_report(&form(&[("MessageStatus", "sent")]), None).is_none());
    }
}
