//! The biller's daily collection report: its payments of one day (Asia/Ho_Chi_Minh) by
//! category and payer, with what each added to its payable (amount − fees), as rows and CSV.

use paymesh_ledger::client::chain::vnd;
use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{db, may_read, sql, uuid_field};
use paymesh_platform::time::Date;
use paymesh_proto::billing::v1 as pb;
use tonic::Request;

use super::BillingService;
use crate::store;

/// The report's CSV header.
pub const CSV_HEADER: &str = "category,payer,count,amount,fees,net";

impl BillingService {
    pub(super) async fn report(
        &self,
        request: Request<pb::GetCollectionReportRequest>,
    ) -> Result<pb::GetCollectionReportResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        let day = v.parse("date", Date::parse(&req.date));
        if let Some(b) = biller
            && !may_read(caller, b)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read the collections of biller {b}"
            )));
        }
        v.into_result()?;
        let (Some(biller), Some(day)) = (biller, day) else {
            return Err(ApiError::invalid("date", "required"));
        };
        let category = self
            .inner
            .directory
            .merchant(biller)
            .await?
            .filter(|m| m.biller)
            .ok_or(ApiError::NotFound { resource: "biller" })?
            .biller_category
            .clone();
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let collected = store::collected(&mut conn, biller, day).await.map_err(db)?;
        let mut csv = format!("{CSV_HEADER}\n");
        let (mut count, mut amount, mut fees) = (0i64, 0i64, 0i64);
        let rows = collected
            .iter()
            .map(|c| {
                count += c.count;
                amount += c.amount;
                fees += c.fees;
                csv.push_str(&format!(
                    "{category},{},{},{},{},{}\n",
                    c.payer,
                    c.count,
                    c.amount,
                    c.fees,
                    c.amount - c.fees
                ));
                pb::CollectionRow {
                    category: category.clone(),
                    payer: c.payer.clone(),
                    count: u64::try_from(c.count).unwrap_or(0),
                    amount: Some(vnd(c.amount)),
                    fees: Some(vnd(c.fees)),
                    net: Some(vnd(c.amount - c.fees)),
                }
            })
            .collect();
        csv.push_str(&format!(
            "TOTAL,,{count},{amount},{fees},{}\n",
            amount - fees
        ));
        Ok(pb::GetCollectionReportResponse {
            biller_id: biller.to_string(),
            date: day.to_string(),
            rows,
            count: u64::try_from(count).unwrap_or(0),
            amount: Some(vnd(amount)),
            fees: Some(vnd(fees)),
            net: Some(vnd(amount - fees)),
            csv,
        })
    }
}
