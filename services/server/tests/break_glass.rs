//! Break-glass under the hospital policies, on real C-CDA patient records: a cardiology
//! clinician cannot see an oncology patient's PHI, until they invoke emergency access with a
//! reason; then search and read work (not summarize or ask, which the policy does not open),
//! and every such request is in the audit log with the reason, allowed or denied.

mod common;

use vellum_server::api::{SearchRequest, SummarizeRequest};
use vellum_server::{Caller, ServiceError};

#[test]
fn break_glass_opens_search_and_read_and_is_always_recorded() {
    let setup = common::setup(
        "hospital",
        &[
            (
                "cardiology",
                "phi",
                "medical-ccda-smart-samples/EMERGE/Patient-112.xml",
            ),
            (
                "oncology",
                "phi",
                "medical-ccda-smart-samples/EMERGE/Patient-134.xml",
            ),
        ],
        &[
            ("carla", &["clinician"], &["dept-cardiology"]),
            ("bill", &["billing"], &["dept-oncology"]),
        ],
    );
    let oncology = setup
        .documents
        .iter()
        .find(|(_, (collection, _))| collection == "oncology")
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let search = SearchRequest {
        query: "patient medications allergies problems".into(),
        mode: None,
        k: Some(50),
        collections: None,
        ..Default::default()
    };
    let collections_found = |caller: &Caller| -> Vec<String> {
        let mut found: Vec<String> = setup
            .service
            .search(caller, &search)
            .unwrap_or_else(|err| panic!("search: {err}"))
            .results
            .into_iter()
            .map(|hit| hit.collection)
            .collect();
        found.sort();
        found.dedup();
        found
    };

    let carla = Caller::new(setup.principals[0].clone(), "10.1.2.3");
    // The web app offers the reason prompt to those whom emergency access would open more.
    let bill = Caller::new(setup.principals[1].clone(), "10.1.2.4");
    assert!(matches!(
        setup.service.break_glass_offered(&carla),
        Ok(true)
    ));
    assert!(matches!(
        setup.service.break_glass_offered(&bill),
        Ok(false)
    ));
    assert_eq!(collections_found(&carla), ["cardiology"]);
    assert!(matches!(
        setup.service.get_document(&carla, &oncology),
        Err(ServiceError::NotFound)
    ));

    let mut emergency = carla.clone();
    emergency.break_glass = Some("trauma bay 2: unconscious patient, oncology history".into());
    assert_eq!(collections_found(&emergency), ["cardiology", "oncology"]);
    let read = setup
        .service
        .get_document(&emergency, &oncology)
        .unwrap_or_else(|err| panic!("break-glass read: {err}"));
    assert_eq!(read.collection, "oncology");
    // The policy opens search and read only.
    let summary = setup.service.summarize(
        &emergency,
        &SummarizeRequest {
            document_id: oncology.clone(),
            kind: None,
            prose: Some(false),
            max_tokens: Some(16),
        },
    );
    assert!(
        matches!(summary, Err(ServiceError::Forbidden)),
        "{summary:?}"
    );

    // Break-glass does not lift the PHI rule for a non-clinician.
    let mut billing = Caller::new(setup.principals[1].clone(), "10.1.2.4");
    billing.break_glass = Some("testing".into());
    assert!(matches!(
        setup.service.get_document(&billing, &oncology),
        Err(ServiceError::NotFound)
    ));

    // Every break-glass request is recorded with its reason, allowed or denied.
    setup.audit.shutdown().unwrap_or_else(|err| panic!("{err}"));
    let records =
        vellum_audit::read_records(&setup.data.join("audit")).unwrap_or_else(|err| panic!("{err}"));
    let glass: Vec<_> = records
        .iter()
        .filter(|record| record.detail.contains_key("break_glass"))
        .collect();
    let allowed_read = glass.iter().any(|record| {
        record.action.as_deref() == Some("document.read")
            && record.principal.as_deref() == Some("carla")
            && record
                .decision
                .as_ref()
                .is_some_and(|d| d.allowed && d.policies.contains(&"break-glass".to_string()))
    });
    assert!(
        allowed_read,
        "no allowed break-glass read naming the policy"
    );
    assert!(glass
        .iter()
        .any(|record| record.action.as_deref() == Some("search")));
    assert!(glass
        .iter()
        .any(|record| record.principal.as_deref() == Some("bill")
            && record.outcome.as_deref() == Some("not_found")));
    assert_eq!(glass.len(), 4, "search, read, summarize, bill's read");
}
