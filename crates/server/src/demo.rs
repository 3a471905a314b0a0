//! The demo clinic (`ketaflow serve --demo`): a user per role and patients with different
//! indications and histories, so that a newcomer sees real data at once. Patients and plans are
//! written through the same validated, audited use cases as the chart: the demo nurse records the
//! intake, the demo physician acknowledges contraindications and creates and approves the plans
//! (so `DosePlan::approve` checks their limits). The accounts and the sessions in the chairs, with
//! their recent past, are written directly as system `demo`.

use ketaflow_store::{Actor, NewRecord, NewUser, Role};
use time::Date;

use crate::error::ApiError;
use crate::state::AppState;
use ketaflow_app::accounts::hash_password;
use ketaflow_app::intake::{AcknowledgeIn, BpIn, CodeIn, HeightIn, MedicationIn, PatientIn, WeightIn};
use ketaflow_app::plans::{ApproveIn, PlanIn};
use ketaflow_app::policy::Caller;

/// A demo account and its password (printed once by the CLI).
#[derive(Debug, Clone)]
pub struct DemoAccount {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Password.
    pub password: String,
}

/// The demo accounts. Their passwords are public by design; a demo database is not for patients.
pub fn demo_accounts() -> Vec<DemoAccount> {
    [
        ("demo.admin", Role::Administrator),
        ("demo.physician", Role::Physician),
        ("demo.nurse", Role::Nurse),
        ("demo.viewer", Role::Viewer),
    ]
    .into_iter()
    .map(|(username, role)| DemoAccount {
        username: username.into(),
        role,
        password: format!("{username}-password"),
    })
    .collect()
}

struct DemoPatient {
    name: &'static str,
    mrn: &'static str,
    dob: &'static str,
    sex: &'static str,
    weight_kg: f64,
    height_cm: f64,
    indications: &'static [&'static str],
    medications: &'static [(&'static str, &'static str, Option<f64>)],
    conditions: &'static [&'static str],
    bp: (f64, f64),
    acknowledge: &'static [(&'static str, &'static str)],
    plan: Option<(&'static str, f64)>,
    /// A physician's adjusted dose, mg/kg (None: the protocol's).
    dose_per_kg: Option<f64>,
    /// Whether the plan is shown approved.
    approved: bool,
    /// A chair booked for the patient today: (chair, infusing now).
    chair: Option<(&'static str, bool)>,
    /// Allergies: (substance, reaction, severity).
    allergies: &'static [(&'static str, &'static str, &'static str)],
}

const PATIENTS: [DemoPatient; 8] = [
    DemoPatient {
        name: "Alex Morgan",
        mrn: "KF-1001",
        dob: "1984-05-12",
        sex: "female",
        weight_kg: 68.0,
        height_cm: 168.0,
        indications: &["treatment_resistant_depression"],
        medications: &[
            ("sertraline", "other", Some(150.0)),
            ("lorazepam", "benzodiazepine", Some(1.0)),
        ],
        conditions: &[],
        bp: (124.0, 78.0),
        acknowledge: &[],
        plan: Some(("trd", 1.0)),
        dose_per_kg: None,
        approved: true,
        chair: Some(("Chair 1", true)),
        allergies: &[("penicillin", "hives and facial swelling", "severe")],
    },
    DemoPatient {
        name: "Sam Okafor",
        mrn: "KF-1002",
        dob: "1971-11-03",
        sex: "male",
        weight_kg: 112.0,
        height_cm: 180.0,
        indications: &["crps"],
        medications: &[
            ("oxycodone", "opioid", Some(40.0)),
            ("gabapentin", "other_cns_depressant", Some(1800.0)),
        ],
        conditions: &[],
        bp: (138.0, 86.0),
        acknowledge: &[],
        plan: Some(("crps", 1.0)),
        dose_per_kg: None,
        approved: false,
        chair: None,
        allergies: &[],
    },
    DemoPatient {
        name: "Jordan Lee",
        mrn: "KF-1003",
        dob: "1990-02-28",
        sex: "male",
        weight_kg: 81.0,
        height_cm: 183.0,
        indications: &["ptsd", "treatment_resistant_depression"],
        medications: &[("bupropion", "cyp2b6_inhibitor", Some(300.0))],
        conditions: &["substance_use_disorder_history"],
        bp: (146.0, 92.0),
        acknowledge: &[],
        plan: None,
        dose_per_kg: None,
        approved: false,
        chair: None,
        allergies: &[],
    },
    DemoPatient {
        name: "Maria Rossi",
        mrn: "KF-1004",
        dob: "1966-08-19",
        sex: "female",
        weight_kg: 59.0,
        height_cm: 160.0,
        indications: &["bipolar_depression"],
        medications: &[
            ("lithium", "other", Some(900.0)),
            ("lamotrigine", "lamotrigine", Some(200.0)),
        ],
        conditions: &["poorly_controlled_cardiovascular_disease"],
        bp: (150.0, 94.0),
        acknowledge: &[(
            "condition.poorly_controlled_cardiovascular_disease",
            "cardiology review 2026-11-10: BP controlled on current regimen, benefit outweighs risk",
        )],
        plan: Some(("bipolar-depression", 1.0)),
        dose_per_kg: None,
        approved: false,
        chair: None,
        allergies: &[],
    },
    DemoPatient {
        name: "Chris Novak",
        mrn: "KF-1005",
        dob: "1979-01-07",
        sex: "male",
        weight_kg: 77.0,
        height_cm: 175.0,
        indications: &["neuropathic_pain"],
        medications: &[("theophylline", "theophylline", Some(400.0))],
        conditions: &[],
        bp: (128.0, 80.0),
        acknowledge: &[],
        plan: None,
        dose_per_kg: None,
        approved: false,
        chair: None,
        allergies: &[],
    },
    DemoPatient {
        name: "Priya Shah",
        mrn: "KF-1006",
        dob: "1995-06-30",
        sex: "female",
        weight_kg: 63.0,
        height_cm: 165.0,
        indications: &["fibromyalgia", "anxiety"],
        medications: &[],
        conditions: &["pregnancy"],
        bp: (112.0, 70.0),
        acknowledge: &[],
        plan: None,
        dose_per_kg: None,
        approved: false,
        chair: None,
        allergies: &[],
    },
    // Booked in Chair 2 for today with an approved plan: the session a nurse runs from check-in.
    DemoPatient {
        name: "Robin Hale",
        mrn: "KF-1007",
        dob: "1988-03-14",
        sex: "female",
        weight_kg: 72.0,
        height_cm: 170.0,
        indications: &["treatment_resistant_depression"],
        medications: &[("escitalopram", "other", Some(20.0))],
        conditions: &[],
        bp: (118.0, 76.0),
        acknowledge: &[],
        plan: Some(("trd", 1.0)),
        dose_per_kg: None,
        approved: true,
        chair: Some(("Chair 2", false)),
        allergies: &[("latex", "contact dermatitis", "mild")],
    },
    // A draft plan above the protocol's soft limits (0.8 mg/kg against a soft 0.75 mg/kg; 64 mg
    // against a soft 60 mg per session): a physician approves it only with a reason per limit.
    DemoPatient {
        name: "Dana Whitfield",
        mrn: "KF-1008",
        dob: "1976-09-02",
        sex: "male",
        weight_kg: 80.0,
        height_cm: 178.0,
        indications: &["treatment_resistant_depression"],
        medications: &[("venlafaxine", "other", Some(225.0))],
        conditions: &[],
        bp: (126.0, 80.0),
        acknowledge: &[],
        plan: Some(("trd", 1.0)),
        dose_per_kg: Some(0.8),
        approved: false,
        chair: None,
        allergies: &[],
    },
];

/// Whether the database already holds demo data (any patient record).
pub async fn has_patients(state: &AppState) -> Result<bool, ApiError> {
    Ok(!state
        .store
        .list_records("patient", None, None, 1)
        .await?
        .is_empty())
}

/// Seeds the demo clinic into an empty database; returns the accounts created.
pub async fn seed(state: &AppState) -> Result<Vec<DemoAccount>, ApiError> {
    let actor = Actor::system("demo");
    let now = state.now();
    let mut created = Vec::new();
    for account in demo_accounts() {
        if state
            .store
            .get_user_by_username(&account.username)
            .await?
            .is_some()
        {
            continue;
        }
        state
            .store
            .create_user_audited(
                &actor,
                &NewUser {
                    username: account.username.clone(),
                    display_name: format!("Demo {}", account.role.as_str()),
                    role: account.role,
                    password_hash: hash_password(&account.password)?,
                },
                now,
            )
            .await?;
        created.push(account);
    }
    if has_patients(state).await? {
        return Ok(created);
    }
    let caller = |username: &'static str| async move {
        let user = state
            .store
            .get_user_by_username(username)
            .await?
            .ok_or_else(|| ApiError::internal(format!("the demo account {username} is missing")))?;
        Ok::<_, ApiError>(Caller { user })
    };
    let (nurse, physician) = (caller("demo.nurse").await?, caller("demo.physician").await?);
    let today: Date = now.date();
    let mut chairs: Vec<(ChairPlan, (f64, f64), &'static str, bool)> = Vec::new();
    let measured = (today - time::Duration::days(3)).to_string();
    let mut ids = std::collections::HashMap::new();
    for p in &PATIENTS {
        // The intake a nurse would type, then the physician's acknowledgements: each a use case,
        // validated and audited as from the chart.
        let patient = state
            .create_patient(
                &nurse,
                PatientIn {
                    display_name: p.name.into(),
                    mrn: Some(p.mrn.into()),
                    date_of_birth: p.dob.into(),
                    sex: p.sex.into(),
                },
            )
            .await?;
        let id = patient.id;
        ids.insert(p.mrn, id);
        let on = || measured.clone();
        state
            .add_height(
                &nurse,
                id,
                HeightIn {
                    height_cm: p.height_cm,
                    on: on(),
                },
            )
            .await?;
        state
            .add_weight(
                &nurse,
                id,
                WeightIn {
                    weight_kg: p.weight_kg,
                    on: on(),
                },
            )
            .await?;
        for code in p.indications {
            state
                .add_indication(&nurse, id, CodeIn { code: (*code).into() })
                .await?;
        }
        for (name, class, dose) in p.medications {
            let medication = MedicationIn {
                name: (*name).into(),
                class: (*class).into(),
                daily_dose_mg: *dose,
            };
            state.add_medication(&nurse, id, medication).await?;
        }
        for (substance, reaction, severity) in p.allergies {
            let allergy = ketaflow_app::intake::AllergyIn {
                substance: (*substance).into(),
                reaction: (*reaction).into(),
                severity: (*severity).into(),
            };
            state.add_allergy(&nurse, id, allergy).await?;
        }
        for code in p.conditions {
            state
                .add_condition(&nurse, id, CodeIn { code: (*code).into() })
                .await?;
        }
        let bp = BpIn {
            systolic_mmhg: p.bp.0,
            diastolic_mmhg: p.bp.1,
            on: on(),
        };
        state.set_baseline_bp(&nurse, id, bp).await?;
        for (code, reason) in p.acknowledge {
            let ack = AcknowledgeIn {
                code: (*code).into(),
                reason: (*reason).into(),
            };
            state.acknowledge(&physician, id, ack).await?;
        }
        if let Some((protocol, concentration)) = p.plan {
            // Plans go through the same use cases as a physician's: eligibility, the protocol's
            // limits, and approval by `DosePlan::approve`, which never lets a hard limit pass.
            let request = PlanIn {
                protocol_id: protocol.into(),
                concentration_mg_per_ml: concentration,
                planned_on: today.to_string(),
                last_session_on: None,
                adjusted_dose_per_kg: p.dose_per_kg,
            };
            let draft = state.create_plan(&physician, id, request).await?;
            if p.approved {
                let approved = state
                    .approve_plan(
                        &physician,
                        draft.id,
                        ApproveIn {
                            overrides: vec![],
                            indication_override: None,
                        },
                    )
                    .await?;
                if let Some((chair, running)) = p.chair {
                    chairs.push((
                        ChairPlan {
                            patient_id: id,
                            patient_name: p.name.to_string(),
                            plan_id: approved.id,
                            protocol_id: approved.protocol_id.clone(),
                            rate_mg_per_h: approved.rate_mg_per_h,
                            concentration_mg_per_ml: approved.concentration_mg_per_ml,
                            dosing_weight_kg: approved.dosing_weight_kg,
                        },
                        p.bp,
                        chair,
                        running,
                    ));
                }
            }
        }
    }
    let mut infusing = None;
    for (plan, bp, chair, running) in chairs {
        let id = seed_session(state, &actor, plan, bp, chair, running).await?;
        if running {
            infusing = Some(id);
        }
    }
    seed_histories(state, &nurse, &ids, now).await?;
    // A monitor at Chair 1: `serve --demo --mllp ADDR` with `ketaflow monitor-sim --device
    // DEMO-MON-1` streams its readings to the board.
    let admin = caller("demo.admin").await?;
    let monitor = state
        .register_device(
            &admin,
            ketaflow_app::monitors::DeviceIn {
                identifier: "DEMO-MON-1".into(),
                model: "Demo vital-signs monitor".into(),
                serial: "DEMO-0001".into(),
                location: "infusion bay".into(),
            },
        )
        .await?;
    state
        .associate_device(&nurse, monitor.id, Some("Chair 1".into()))
        .await?;
    seed_ledger(state, &nurse, &physician, infusing, now).await?;
    Ok(created)
}

/// One answered questionnaire of a demo history: (days ago, item scores).
type Answered = (i64, &'static [u8]);

/// Questionnaire histories with a trend to look at: a course of six infusions over three weeks
/// with PHQ-9 and GAD-7 falling for Alex Morgan (depression), PCL-5 for Jordan Lee (PTSD), pain
/// scores for Sam Okafor (CRPS). Each answered set goes through the same use case as a form; no
/// answer shows suicide risk (the tour raises one itself).
async fn seed_histories(
    state: &AppState,
    nurse: &Caller,
    ids: &std::collections::HashMap<&'static str, uuid::Uuid>,
    now: time::OffsetDateTime,
) -> Result<(), ApiError> {
    use ketaflow_app::outcomes::OutcomeIn;
    let mrn_of = |mrn: &str| {
        ids.get(mrn)
            .copied()
            .ok_or_else(|| ApiError::internal(format!("demo patient {mrn} is missing")))
    };
    // (record number, instrument, [(days ago, item scores)]).
    let histories: [(&str, &str, &[Answered]); 4] = [
        (
            "KF-1001",
            "phq9",
            &[
                (42, &[3, 3, 2, 2, 2, 2, 2, 2, 0]),
                (35, &[2, 2, 2, 2, 2, 2, 1, 2, 0]),
                (28, &[2, 2, 2, 1, 1, 1, 1, 1, 0]),
                (21, &[1, 2, 1, 1, 1, 1, 1, 1, 0]),
                (10, &[1, 1, 1, 1, 1, 0, 1, 0, 0]),
                (3, &[1, 1, 0, 1, 0, 0, 1, 0, 0]),
            ],
        ),
        (
            "KF-1001",
            "gad7",
            &[
                (42, &[2, 2, 2, 2, 2, 1, 2]),
                (28, &[2, 2, 1, 1, 2, 1, 1]),
                (10, &[1, 1, 1, 1, 1, 1, 1]),
                (3, &[1, 1, 0, 1, 1, 0, 1]),
            ],
        ),
        (
            "KF-1003",
            "pcl5",
            &[
                (30, &[3, 3, 3, 2, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2, 3, 2, 3, 3, 2, 3]),
                (16, &[2, 2, 3, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]),
                (4, &[2, 1, 2, 1, 2, 1, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1]),
            ],
        ),
        (
            "KF-1002",
            "pain_nrs",
            &[(28, &[8]), (21, &[7]), (14, &[7]), (7, &[5]), (2, &[4])],
        ),
    ];
    for (mrn, instrument, answers) in histories {
        let id = mrn_of(mrn)?;
        for (i, (days_ago, items)) in answers.iter().enumerate() {
            let answered_at = (now - time::Duration::days(*days_ago))
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let body = OutcomeIn {
                instrument: instrument.into(),
                items: Some(items.iter().map(|x| Some(*x)).collect()),
                cssrs: None,
                context: if i == 0 { "baseline" } else { "follow_up" }.into(),
                answered_at: Some(answered_at),
                session_id: None,
            };
            state.record_outcome(nurse, id, body).await?;
        }
    }
    Ok(())
}

/// A controlled-substance ledger for the day: four vials received, one drawn for the infusion in
/// Chair 1 (its whole planned dose) and a count of the vials still sealed, through the same use
/// cases as the ledger pages (the physician receives and counts; the nurse draws).
async fn seed_ledger(
    state: &AppState,
    nurse: &Caller,
    physician: &Caller,
    infusing: Option<uuid::Uuid>,
    now: time::OffsetDateTime,
) -> Result<(), ApiError> {
    use ketaflow_app::ledger::{CountIn, CountLineIn, DrawIn, ReceiptIn, SupplierDoc};
    let expiry = (now.date() + time::Duration::days(400)).to_string();
    let vials = state
        .receive_vials(
            physician,
            ReceiptIn {
                // Illustrative product data: a 10 mL vial of 10 mg/mL (NDC shape only).
                ndc: "0409-2051-05".into(),
                product_name: "Ketamine HCl injection 10 mg/mL".into(),
                strength_mg_per_ml: "10".into(),
                volume_ml: "10".into(),
                lot: "DEMO-LOT-2291".into(),
                expiry,
                supplier: SupplierDoc {
                    name: "Demo Wholesale Inc.".into(),
                    address: "1 Depot Road, Springfield".into(),
                    dea_number: "RD1234563".into(),
                },
                invoice_number: "DEMO-INV-0042".into(),
                containers: Some(4),
            },
        )
        .await?;
    if let (Some(session_id), Some(first)) = (infusing, vials.first()) {
        let session = state.session(nurse, session_id).await?;
        let plan = state.plan(nurse, session.plan_id).await?;
        state
            .draw(
                nurse,
                first.id,
                DrawIn {
                    session_id,
                    quantity_mg: format!("{:.1}", plan.dose_mg),
                },
            )
            .await?;
    }
    let sealed: Vec<CountLineIn> = vials
        .iter()
        .skip(1)
        .map(|v| CountLineIn {
            vial_id: v.id,
            counted_mg: "100".into(),
            estimated: false,
        })
        .collect();
    state
        .record_count(
            physician,
            CountIn {
                kind: "count".into(),
                business_time: None,
                note: Some("start-of-day count of the sealed vials".into()),
                vials: sealed,
            },
        )
        .await?;
    Ok(())
}

/// A booked chair's approved plan.
struct ChairPlan {
    patient_id: uuid::Uuid,
    patient_name: String,
    plan_id: uuid::Uuid,
    protocol_id: String,
    rate_mg_per_h: f64,
    concentration_mg_per_ml: f64,
    dosing_weight_kg: f64,
}

/// A session in a chair. Running: checked in 20 min ago and infusing for 15 min, with a monitor's
/// readings every 5 min, so that the board and the session screen have something to show.
/// Otherwise booked for now, waiting for check-in.
async fn seed_session(
    state: &AppState,
    actor: &Actor,
    ChairPlan {
        patient_id,
        patient_name,
        plan_id,
        protocol_id,
        rate_mg_per_h,
        concentration_mg_per_ml: concentration,
        dosing_weight_kg: dosing_weight,
    }: ChairPlan,
    (systolic, diastolic): (f64, f64),
    chair: &str,
    running: bool,
) -> Result<uuid::Uuid, ApiError> {
    use ketaflow_app::records::{
        BaselineDoc, BaselineOrigin, PreChecksDoc, RateChangeKind, RateDoc, ReadingDoc, SESSION, SessionDoc,
        TransitionDoc, TransitionKind,
    };
    use ketaflow_app::vitals::{VitalsJob, write_vitals};
    use ketaflow_store::NewEvent;
    use ketaflow_units::{Kilograms, MgPerHour, MgPerMl, QuantityError};
    fn quantity<T>(q: Result<T, QuantityError>) -> Result<T, ApiError> {
        q.map_err(|e| ApiError::internal(format!("demo plan: {e}")))
    }
    let now = state.now();
    let minutes = |m: i64| now - time::Duration::minutes(m);
    let by = actor.user_id().to_string();
    let reading = |key: &str, s: f64, d: f64, hr: f64| ReadingDoc {
        idempotency_key: key.into(),
        taken_at: None,
        systolic_mmhg: Some(s),
        diastolic_mmhg: Some(d),
        heart_rate_per_min: Some(hr),
        spo2_percent: Some(98.0),
        respiratory_rate_per_min: Some(14.0),
        temperature_c: Some(36.8),
        consciousness: Some("alert".into()),
        moaas: Some(5),
        on_oxygen: Some(false),
    };
    let mut readings = vec![
        (21, reading("demo-baseline", systolic, diastolic, 74.0)),
        (15, reading("demo-1", systolic + 6.0, diastolic + 3.0, 78.0)),
        (10, reading("demo-2", systolic + 14.0, diastolic + 6.0, 84.0)),
        (5, reading("demo-3", systolic + 18.0, diastolic + 8.0, 86.0)),
    ];
    let doc = SessionDoc {
        patient_id,
        patient_name: patient_name.clone(),
        plan_id,
        protocol_id,
        chair: chair.into(),
        scheduled_for: if running { minutes(30) } else { now },
        created_by: by.clone(),
        baseline: Some(BaselineDoc {
            systolic_mmhg: systolic,
            diastolic_mmhg: diastolic,
            heart_rate_per_min: Some(74.0),
            origin: BaselineOrigin::Session,
        }),
        transitions: vec![
            TransitionDoc {
                event: TransitionKind::CheckIn,
                at: minutes(20),
                by: by.clone(),
                reason: None,
                checks: Some(PreChecksDoc {
                    fasting_confirmed: true,
                    escort_confirmed: true,
                    consent_on_file: true,
                    questionnaire_answered: true,
                    questionnaire_waived_reason: None,
                }),
                stop: None,
            },
            TransitionDoc {
                event: TransitionKind::Start,
                at: minutes(15),
                by: by.clone(),
                reason: None,
                checks: None,
                stop: None,
            },
        ],
        rates: vec![RateDoc {
            ..RateDoc::delivering(
                RateChangeKind::Start,
                minutes(15),
                quantity(MgPerHour::new(rate_mg_per_h))?,
                quantity(MgPerMl::new(concentration))?,
                quantity(Kilograms::new(dosing_weight))?,
                by.clone(),
            )
        }],
        side_effects: vec![],
        assessments: vec![],
        artefacts: vec![],
    };
    let mut doc = doc;
    if !running {
        doc.transitions.clear();
        doc.rates.clear();
        readings.clear();
        // As a booking made through the API: the intake BP until the session's own baseline.
        doc.baseline = Some(BaselineDoc {
            systolic_mmhg: systolic,
            diastolic_mmhg: diastolic,
            heart_rate_per_min: None,
            origin: BaselineOrigin::Intake,
        });
    }
    // The document must replay through the state machine like any stored session.
    doc.replay()?;
    let data = serde_json::to_value(&doc).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut tx = state.store.begin().await?;
    let new = NewRecord {
        kind: SESSION,
        parent_id: Some(patient_id),
        label: &format!("{chair} {patient_name}"),
        data: &data,
    };
    let record = tx
        .insert_record_audited(actor, "session.create", &new, now)
        .await?;
    tx.set_in_progress(SESSION, record.id, true).await?;
    tx.append_event(&NewEvent {
        session_id: record.id,
        kind: "session.created",
        at: now,
        data: &serde_json::json!({ "chair": chair, "state": if running { "infusing" } else { "scheduled" } }),
    })
    .await?;
    for (ago, r) in readings {
        let vitals = r.vital_signs(0)?;
        let job = VitalsJob {
            session_id: record.id,
            actor: actor.clone(),
            source: "device",
            recorded_by: "device:Demo monitor".into(),
            readings: vec![(r, vitals, minutes(ago))],
            baseline: None,
            received_at: minutes(ago),
        };
        write_vitals(&mut tx, &state.settings.alarm_rules, &job).await?;
    }
    tx.commit().await?;
    Ok(record.id)
}
