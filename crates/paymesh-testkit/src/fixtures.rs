//! What several services' tests need of the merchant service: applications of a vendor and a
//! biller with fresh tax codes, an ACTIVE vendor or biller made through the real merchant RPCs, and
//! `zbarimg` (a QR decoder nobody here wrote) reading a PNG.

use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;

use crate::{TestMesh, keyed, unique_key};

/// A valid tax code not used before in this process (random sequence, right check digit).
pub fn tax_code() -> String {
    loop {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).unwrap();
        let n = u64::from_le_bytes(bytes) % 10_000_000;
        let first_nine = format!("01{n:07}");
        if let Some(check) = paymesh_vn::tax_code::TaxCode::check_digit(&first_nine)
            && n != 0
        {
            return format!("{first_nine}{check}");
        }
    }
}

pub fn vendor() -> pb::MerchantApplication {
    pb::MerchantApplication {
        business_name: "Hộ kinh doanh Nguyễn Thị Lan".into(),
        trading_name: "Bún bò Cô Lan".into(),
        tax_code: tax_code(),
        owner_citizen_id: "079187001234".into(),
        phone: "090 123 4567".into(),
        address: "Sạp 45, chợ Bến Thành, Q.1, TP. Hồ Chí Minh".into(),
        market_name: "Chợ Bến Thành".into(),
        stall_number: "A-45".into(),
        mcc: "5812".into(),
        biller_category: 0,
        settlement_bank_bin: "970436".into(),
        settlement_account_number: "0011012345678".into(),
    }
}

pub fn biller() -> pb::MerchantApplication {
    pb::MerchantApplication {
        business_name: "Công ty Cổ phần Cấp nước Bến Thành".into(),
        trading_name: String::new(),
        tax_code: tax_code(),
        owner_citizen_id: String::new(),
        phone: "+84 912 345 678".into(),
        address: "194 Pasteur, Q.3, TP. Hồ Chí Minh".into(),
        market_name: String::new(),
        stall_number: String::new(),
        mcc: "4900".into(),
        biller_category: pb::BillerCategory::Water as i32,
        settlement_bank_bin: "970418".into(),
        settlement_account_number: "12010000123456".into(),
    }
}

/// A vendor onboarded and approved by an operator through the mesh's merchant service: its
/// ledger accounts open, its virtual account and static QR issued.
pub async fn active_vendor(mesh: &TestMesh) -> pb::Merchant {
    approved(mesh, pb::MerchantKind::Vendor, vendor()).await
}

/// A biller (a water company) onboarded and approved the same way.
pub async fn active_biller(mesh: &TestMesh) -> pb::Merchant {
    approved(mesh, pb::MerchantKind::Biller, biller()).await
}

async fn approved(
    mesh: &TestMesh,
    kind: pb::MerchantKind,
    application: pb::MerchantApplication,
) -> pb::Merchant {
    let mut merchants =
        MerchantServiceClient::new(mesh.channel_as("merchant", Principal::Operator("test".into())));
    let m = merchants
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: kind as i32,
            application: Some(application),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    merchants
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "KYC documents checked".into(),
            etag: m.etag,
        }))
        .await
        .unwrap()
        .into_inner()
}

/// What `zbarimg`, a decoder nobody here wrote, reads from a PNG.
pub fn zbarimg(png: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("paymesh-qr-{}.png", unique_key("zbar")));
    std::fs::write(&path, png).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!(
            "zbarimg could not be run ({e}): install zbar-tools (`apt-get install zbar-tools`; \
             infra/test.sh does)"
        ),
    };
    assert!(
        out.status.success(),
        "zbarimg found no QR code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}
