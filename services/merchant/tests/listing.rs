#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Listing and searching merchants: filters, diacritic-insensitive search, page tokens bound to their filters.

mod support;

use paymesh_proto::merchant::v1 as pb;
use support::*;

#[tokio::test]
async fn list_and_search_with_filters_and_paging() {
    let mesh = start().await;
    let mut ids = Vec::new();
    let mut stall = 0;
    for (market, name) in [
        ("Chợ Bến Thành", "Bún bò Cô Lan"),
        ("Chợ Bến Thành", "Phở Hòa"),
        ("Chợ Bến Thành", "Cơm tấm Ba Ghiền"),
        ("Chợ Đông Ba", "Bánh bèo Bà Đỏ"),
        ("Chợ Đông Ba", "Nem lụi 100"),
    ] {
        stall += 1;
        let app = pb::MerchantApplication {
            market_name: market.into(),
            trading_name: name.into(),
            stall_number: format!("A-{stall}"),
            ..vendor()
        };
        ids.push(mesh.onboard(pb::MerchantKind::Vendor, app).await.id);
    }
    let water = mesh.onboard(pb::MerchantKind::Biller, biller()).await.id;
    let school = mesh
        .onboard(
            pb::MerchantKind::Biller,
            pb::MerchantApplication {
                business_name: "Trường THCS Lê Lợi".into(),
                mcc: "8211".into(),
                biller_category: pb::BillerCategory::Tuition as i32,
                ..biller()
            },
        )
        .await
        .id;
    mesh.approve(&ids[0]).await;
    mesh.approve(&ids[3]).await;
    mesh.approve(&water).await;

    let list = |req: pb::ListMerchantsRequest| {
        let mut op = mesh.operator();
        async move {
            let mut all = Vec::new();
            let mut req = req;
            loop {
                let page = op.list_merchants(req.clone()).await.unwrap().into_inner();
                all.extend(page.merchants.into_iter().map(|m| m.id));
                if page.next_page_token.is_empty() {
                    return all;
                }
                req.page_token = page.next_page_token;
            }
        }
    };
    let all = list(pb::ListMerchantsRequest {
        page_size: 2,
        ..Default::default()
    })
    .await;
    let mut expected = ids.clone();
    expected.extend([water.clone(), school.clone()]);
    assert_eq!(all, expected, "every merchant once, in onboarding order");

    let active = list(pb::ListMerchantsRequest {
        status: pb::MerchantStatus::Active as i32,
        page_size: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(active, [ids[0].clone(), ids[3].clone(), water.clone()]);

    // Market: case and diacritics do not matter; the whole name must match.
    for market in ["Chợ Bến Thành", "cho ben thanh", "  CHỢ   BẾN THÀNH "] {
        let got = list(pb::ListMerchantsRequest {
            market_name: market.into(),
            ..Default::default()
        })
        .await;
        assert_eq!(got, ids[..3].to_vec(), "{market}");
    }
    assert!(
        list(pb::ListMerchantsRequest {
            market_name: "Chợ Bến".into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Name: a case- and diacritic-insensitive substring of the business or trading name.
    for (q, want) in [
        ("bún bò", vec![ids[0].clone()]),
        ("BUN BO", vec![ids[0].clone()]),
        ("PHỞ", vec![ids[1].clone()]),
        ("ba", vec![ids[2].clone(), ids[3].clone()]),
        ("100", vec![ids[4].clone()]),
        // LIKE's wildcards match only themselves.
        ("%", vec![]),
        ("_", vec![]),
        ("cấp nước", vec![water.clone()]),
        ("lê lợi", vec![school.clone()]),
    ] {
        let got = list(pb::ListMerchantsRequest {
            name_contains: q.into(),
            ..Default::default()
        })
        .await;
        assert_eq!(got, want, "{q}");
    }

    // Category, kind, MCC, combined.
    assert_eq!(
        list(pb::ListMerchantsRequest {
            biller_category: pb::BillerCategory::Tuition as i32,
            ..Default::default()
        })
        .await,
        vec![school.clone()]
    );
    assert_eq!(
        list(pb::ListMerchantsRequest {
            kind: pb::MerchantKind::Biller as i32,
            status: pb::MerchantStatus::PendingReview as i32,
            ..Default::default()
        })
        .await,
        vec![school.clone()]
    );
    assert_eq!(
        list(pb::ListMerchantsRequest {
            mcc: "4900".into(),
            ..Default::default()
        })
        .await,
        vec![water.clone()]
    );

    let mut op = mesh.operator();
    // Page sizes: above 100 is taken as 100; negative is refused.
    let page = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.merchants.len(), 7);
    assert!(page.next_page_token.is_empty());
    // A token is bound to its filters.
    let first = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1,
            status: pb::MerchantStatus::Active as i32,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["page_token"]);
    let e = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: -1,
            status: 99,
            mcc: "12".into(),
            name_contains: "x".repeat(101),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        ["status", "name_contains", "mcc", "page_size", "page_token"]
    );
}
