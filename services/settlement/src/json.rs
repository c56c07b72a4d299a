//! The settlement service's messages as JSON, as operators' scripts (`paymesh settlement …`,
//! `paymesh recon …`) read them: enum names without their prefix (`SETTLED`, `MATCHED`),
//! money as a decimal string of whole đồng, times in RFC 3339 UTC, dates `YYYY-MM-DD`.

use paymesh_platform::edge::json::{money, name, text, time};
use paymesh_proto::settlement::v1 as pb;
use serde_json::{Value, json};

pub fn format(f: i32) -> String {
    name(
        "FILE_FORMAT_",
        pb::FileFormat::try_from(f)
            .unwrap_or_default()
            .as_str_name(),
    )
}

pub fn outcome(o: i32) -> String {
    name(
        "OUTCOME_",
        pb::Outcome::try_from(o).unwrap_or_default().as_str_name(),
    )
}

pub fn window(w: &pb::Window) -> Value {
    json!({
        "business_date": w.business_date,
        "status": name("WINDOW_STATUS_", w.status().as_str_name()),
        "start_time": time(&w.start_time),
        "cutoff_time": time(&w.cutoff_time),
        "close_time": time(&w.close_time),
        "settle_time": time(&w.settle_time),
        "closed_by": text(&w.closed_by),
        "failure_reason": text(&w.failure_reason),
        "gross": money(&w.gross),
        "fees": money(&w.fees),
        "refunds": money(&w.refunds),
        "net": money(&w.net),
        "paid_out": money(&w.paid_out),
        "payouts": w.payout_count,
        "lines": w.line_count,
    })
}

pub fn payout(p: &pb::Payout) -> Value {
    json!({
        "id": p.id,
        "merchant_id": p.merchant_id,
        "biller": p.biller,
        "business_name": p.business_name,
        "bank_bin": p.bank_bin,
        "account_number": p.account_number_masked,
        "gross": money(&p.gross),
        "fees": money(&p.fees),
        "refunds": money(&p.refunds),
        "adjustments": p.adjustments,
        "carried_in": p.carried_in,
        "net": p.net,
        "payout": money(&p.payout),
        "carried_out": p.carried_out,
        "status": name("PAYOUT_STATUS_", p.status().as_str_name()),
        "failure_reason": text(&p.failure_reason),
    })
}

pub fn file(f: &pb::ReconFile) -> Value {
    json!({
        "id": f.id,
        "bank_bin": f.bank_bin,
        "business_date": f.business_date,
        "format": format(f.format),
        "file_name": f.file_name,
        "size_bytes": f.size_bytes,
        "sha256": f.sha256,
        "entries": f.entry_count,
        "create_time": time(&f.create_time),
    })
}

pub fn run(r: &pb::ReconRun) -> Value {
    json!({
        "run_id": r.id,
        "bank_bin": r.bank_bin,
        "format": format(r.format),
        "dry_run": r.dry_run,
        "from_date": text(&r.from_date),
        "to_date": text(&r.to_date),
        "lines": r.lines,
        "matched": r.matched,
        "already_matched": r.already_matched,
        "missing_in_ledger": r.missing_in_ledger,
        "missing_in_bank": r.missing_in_bank,
        "amount_mismatch": r.amount_mismatch,
        "duplicate": r.duplicate,
        "breaks_closed": r.breaks_closed,
        "sha256": r.sha256,
        "created_by": r.created_by,
    })
}

pub fn item(i: &pb::ReconItem) -> Value {
    json!({
        "side": name("ITEM_SIDE_", i.side().as_str_name()),
        "line": i.line,
        "outcome": outcome(i.outcome),
        "amount": money(&i.amount),
        "direction": i.direction,
        "value_date": i.value_date,
        "bank_reference": text(&i.bank_reference),
        "end_to_end_id": text(&i.end_to_end_id),
        "description": i.description,
        "booking_ids": i.booking_ids,
        "note": text(&i.note),
    })
}

pub fn exception(e: &pb::ReconException) -> Value {
    json!({
        "id": e.id,
        "bank_bin": e.bank_bin,
        "run_id": e.run_id,
        "kind": outcome(e.kind),
        "item": e.item.as_ref().map_or(Value::Null, item),
        "status": name("EXCEPTION_STATUS_", e.status().as_str_name()),
        "resolution": text(&name("RESOLUTION_", e.resolution().as_str_name()).replace("UNSPECIFIED", "")),
        "note": text(&e.note),
        "resolved_by": text(&e.resolved_by),
        "resolution_reference": text(&e.resolution_reference),
        "create_time": time(&e.create_time),
        "resolve_time": time(&e.resolve_time),
    })
}
