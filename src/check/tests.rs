//! The anomaly fixtures of Elle (Kingsbury and Alvaro, VLDB 2020) and of
//! Adya's thesis (MIT 1999): G0, G1a-c, G-single, G2, and more.

use super::*;

/// Parses `append x 1` and `r x [1 2]`; for registers, `w x 1`, `r x 1`
/// and `r x nil`.
fn mop(text: &str) -> Mop {
    let mut parts = text.splitn(3, ' ');
    let (f, key, rest) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let key = key.to_string();
    match f {
        "append" => Mop::Append {
            key,
            element: rest.parse().unwrap(),
        },
        "w" => Mop::Write {
            key,
            value: rest.parse().unwrap(),
        },
        "r" if !rest.starts_with('[') => Mop::ReadRegister {
            key,
            value: (rest != "nil").then(|| rest.parse().unwrap()),
        },
        "r" => {
            let inner = rest.trim_start_matches('[').trim_end_matches(']');
            let elements = inner
                .split_whitespace()
                .map(|e| e.parse().unwrap())
                .collect();
            Mop::Read {
                key,
                elements: Some(elements),
            }
        }
        other => panic!("unknown micro-op {other}"),
    }
}

/// The invocation form: reads not yet known.
fn invocation(mops: &[Mop]) -> Vec<Mop> {
    mops.iter()
        .map(|m| match m {
            Mop::Read { key, .. } => Mop::Read {
                key: key.clone(),
                elements: None,
            },
            Mop::ReadRegister { key, .. } => Mop::ReadRegister {
                key: key.clone(),
                value: None,
            },
            other => other.clone(),
        })
        .collect()
}

struct Txn<'a>(EventType, &'a [&'a str]);

fn ok<'a>(mops: &'a [&'a str]) -> Txn<'a> {
    Txn(EventType::Ok, mops)
}

fn failed<'a>(mops: &'a [&'a str]) -> Txn<'a> {
    Txn(EventType::Fail, mops)
}

/// Every transaction on its own process, all invoked before any completes:
/// no real-time order between them.
fn concurrent(txns: &[Txn<'_>]) -> History {
    let mut events = Vec::new();
    for (p, Txn(_, mops)) in txns.iter().enumerate() {
        let mops: Vec<Mop> = mops.iter().map(|m| mop(m)).collect();
        events.push(Event::new(
            p as u64,
            EventType::Invoke,
            0,
            invocation(&mops),
        ));
    }
    for (p, Txn(kind, mops)) in txns.iter().enumerate() {
        let mops: Vec<Mop> = mops.iter().map(|m| mop(m)).collect();
        events.push(Event::new(p as u64, *kind, 0, mops));
    }
    History::new(events).unwrap()
}

/// Each transaction completes before the next is invoked.
fn sequential(txns: &[Txn<'_>]) -> History {
    let mut events = Vec::new();
    for (p, Txn(kind, mops)) in txns.iter().enumerate() {
        let mops: Vec<Mop> = mops.iter().map(|m| mop(m)).collect();
        events.push(Event::new(
            p as u64,
            EventType::Invoke,
            0,
            invocation(&mops),
        ));
        events.push(Event::new(p as u64, *kind, 0, mops));
    }
    History::new(events).unwrap()
}

fn names(history: &History) -> Vec<String> {
    let report = check(history).unwrap();
    for anomaly in &report.anomalies {
        assert!(!anomaly.explanation.is_empty());
    }
    report.names()
}

#[test]
fn g0_write_cycle() {
    let h = concurrent(&[
        ok(&["append x 1", "append y 1"]),
        ok(&["append x 2", "append y 2"]),
        ok(&["r x [1 2]", "r y [2 1]"]),
    ]);
    assert_eq!(names(&h), ["G0"]);
}

#[test]
fn g1a_aborted_read() {
    let h = concurrent(&[failed(&["append x 1"]), ok(&["r x [1]"])]);
    assert_eq!(names(&h), ["G1a"]);
}

#[test]
fn g1b_intermediate_read() {
    let h = concurrent(&[ok(&["append x 1", "append x 2"]), ok(&["r x [1]"])]);
    assert_eq!(names(&h), ["G-single", "G1b"]);
}

#[test]
fn g1c_circular_information_flow() {
    let h = concurrent(&[
        ok(&["append x 1", "r y [1]"]),
        ok(&["append x 2", "append y 1"]),
        ok(&["r x [1 2]"]),
    ]);
    assert_eq!(names(&h), ["G1c"]);
}

#[test]
fn g_single_read_skew() {
    let h = concurrent(&[
        ok(&["append x 1", "append y 1"]),
        ok(&["r x [1]", "r y []"]),
    ]);
    assert_eq!(names(&h), ["G-single"]);
}

#[test]
fn g2_item_write_skew_is_the_only_finding() {
    let h = concurrent(&[ok(&["r y []", "append x 1"]), ok(&["r x []", "append y 1"])]);
    let report = check_list_append(&h).unwrap();
    assert_eq!(report.names(), ["G2-item"]);
    assert!(
        report.is_valid_except(&["G2-item"]),
        "snapshot isolation allows write skew"
    );
    assert!(report.anomalies[0].explanation.contains("a cycle"));
}

#[test]
fn lost_update() {
    let h = concurrent(&[
        ok(&["append x 0"]),
        ok(&["r x [0]", "append x 1"]),
        ok(&["r x [0]", "append x 2"]),
    ]);
    assert_eq!(names(&h), ["G2-item", "lost-update"]);
}

#[test]
fn galera_mdev_38977_shape_is_g_single() {
    let h = concurrent(&[
        ok(&["append k 2", "append k 3", "append k 5"]),
        ok(&["r k [2 3 5]", "append k 6"]),
        ok(&["append k 10"]),
        ok(&["r k [2 3 5 10 6]"]),
    ]);
    assert_eq!(names(&h), ["G-single"]);
}

#[test]
fn a_stale_read_is_a_realtime_cycle_only() {
    let h = sequential(&[
        ok(&["append x 1"]),
        ok(&["append x 2"]),
        ok(&["r x [1]"]),
        ok(&["r x [1 2]"]),
    ]);
    let report = check_list_append(&h).unwrap();
    assert_eq!(report.names(), ["G-single-realtime"]);
    assert!(
        report.anomalies[0]
            .rules_out()
            .contains("strict serializable")
    );
}

#[test]
fn internal_inconsistency() {
    let h = concurrent(&[
        ok(&["append x 1"]),
        ok(&["append x 3"]),
        ok(&["r x [1]", "append x 2", "r x [1 3]"]),
    ]);
    assert!(
        names(&h).contains(&"internal".to_string()),
        "{:?}",
        names(&h)
    );
}

#[test]
fn duplicate_elements_and_incompatible_orders() {
    let h = concurrent(&[ok(&["append x 1"]), ok(&["r x [1 1]"])]);
    assert!(names(&h).contains(&"duplicate-elements".to_string()));
    let h = concurrent(&[
        ok(&["append x 1"]),
        ok(&["append x 2"]),
        ok(&["r x [1 2]"]),
        ok(&["r x [2 1]"]),
    ]);
    assert!(names(&h).contains(&"incompatible-order".to_string()));
}

#[test]
fn a_serial_history_is_valid() {
    let h = sequential(&[
        ok(&["r x []", "append x 1"]),
        ok(&["r x [1]", "append x 2", "r x [1 2]"]),
        failed(&["append x 9"]),
        ok(&["r x [1 2]", "r y []"]),
    ]);
    assert_eq!(names(&h), Vec::<String>::new());
}

#[test]
fn an_element_appended_twice_is_not_a_history() {
    let h = concurrent(&[ok(&["append x 1"]), ok(&["append x 1"])]);
    assert!(matches!(
        check_list_append(&h),
        Err(HistoryError::DuplicateAppend { .. })
    ));
}

#[test]
fn an_indeterminate_append_may_be_seen_but_its_reads_are_not_trusted() {
    // p0's append timed out (info), yet p1 saw it: not an aborted read.
    let events = vec![
        Event::new(
            0,
            EventType::Invoke,
            0,
            vec![mop("append x 1"), mop("r y [7]")],
        ),
        Event::new(
            0,
            EventType::Info,
            0,
            vec![mop("append x 1"), mop("r y [7]")],
        ),
        Event::new(1, EventType::Invoke, 0, invocation(&[mop("r x [1]")])),
        Event::new(1, EventType::Ok, 0, vec![mop("r x [1]")]),
    ];
    let h = History::new(events).unwrap();
    assert_eq!(names(&h), Vec::<String>::new());
}

#[test]
fn g_nonadjacent_two_separated_anti_dependencies() {
    let h = concurrent(&[
        ok(&["r x []", "r w [1]"]),
        ok(&["append x 1", "append y 1"]),
        ok(&["r y [1]", "r z []"]),
        ok(&["append z 1", "append w 1"]),
    ]);
    let report = check_list_append(&h).unwrap();
    assert_eq!(report.names(), ["G-nonadjacent"]);
    let explanation = &report.anomalies[0].explanation;
    assert!(
        explanation.contains("[rw]") && explanation.contains("[wr]"),
        "{explanation}"
    );
}

#[test]
fn explanations_name_transactions_keys_and_edges() {
    let h = concurrent(&[
        ok(&["append x 1", "append y 1"]),
        ok(&["r x [1]", "r y []"]),
    ]);
    let report = check_list_append(&h).unwrap();
    let explanation = &report.anomalies[0].explanation;
    assert_eq!(
        explanation,
        "T1 (process 1, ok) read y = [], which T0 (process 0, ok) changed by appending 1 [rw]; \
         then T0 (process 0, ok) appended 1 to x, which T1 (process 1, ok) read [wr]; a cycle."
    );
}

#[test]
fn elle_json_round_trips_and_checks_the_same() {
    let text = r#"[
        {"index": 0, "type": "invoke", "process": 0, "time": 1, "f": "txn", "value": [["append", 1, 1], ["append", "y", 1]]},
        {"index": 1, "type": "invoke", "process": 1, "time": 2, "f": "txn", "value": [["r", 1, null], ["r", "y", null]]},
        {"index": 2, "type": "ok", "process": 0, "time": 3, "f": "txn", "value": [["append", 1, 1], ["append", "y", 1]]},
        {"index": 3, "type": "ok", "process": 1, "time": 4, "f": "txn", "value": [["r", 1, [1]], ["r", "y", []]]}
    ]"#;
    let history = read_json(text).unwrap();
    assert_eq!(names(&history), ["G-single"]);
    let lines = write_json_lines(&history);
    assert_eq!(lines.lines().count(), 4);
    assert!(
        lines.contains(r#"["append",1,1]"#) && lines.contains(r#"["r","y",[]]"#),
        "{lines}"
    );
    let again = read_json(&lines).unwrap();
    assert_eq!(again, history);
}

#[test]
fn malformed_json_names_the_bad_event() {
    let bad = r#"{"type": "ok", "process": 0, "value": [["append", 1, 1]]}"#;
    assert!(matches!(
        read_json(bad),
        Err(HistoryError::Unmatched { .. })
    ));
    let bad = r#"{"type": "begin", "process": 0, "value": []}"#;
    let err = read_json(bad).unwrap_err().to_string();
    assert!(err.contains("event 0") && err.contains("begin"), "{err}");
    let bad = r#"{"type": "invoke", "process": 0, "value": [["cas", 1, 1]]}"#;
    assert!(
        read_json(bad)
            .unwrap_err()
            .to_string()
            .contains("not append, w or r")
    );
    assert!(read_json("{not json").is_err());
}

#[test]
fn generated_serializable_histories_are_valid() {
    for seed in 0..5 {
        let history = generate::serializable(generate::Shape::new(2_000, seed));
        let report = check_list_append(&history).unwrap();
        assert!(
            report.anomalies.is_empty(),
            "seed {seed}: {:?}",
            report.anomalies
        );
    }
}

#[test]
fn a_lost_append_in_a_generated_history_is_found() {
    // Drop one committed append from every later read: the readers that
    // ran after it now show a stale list.
    let history = generate::serializable(generate::Shape::new(500, 7));
    let mut events = history.events().to_vec();
    let (key, lost) = events
        .iter()
        .filter(|e| e.kind == EventType::Ok)
        .flat_map(|e| e.value.iter())
        .find_map(|m| match m {
            Mop::Append { key, element } => Some((key.clone(), *element)),
            _ => None,
        })
        .unwrap();
    for event in &mut events {
        for mop in &mut event.value {
            if let Mop::Read {
                key: k,
                elements: Some(elements),
            } = mop
                && *k == key
            {
                elements.retain(|e| *e != lost);
            }
        }
    }
    let report = check_list_append(&History::new(events).unwrap()).unwrap();
    assert!(!report.anomalies.is_empty(), "a lost append went unnoticed");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any text: a history or an error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = read_json(&text);
        }

        /// Corrupted reads (elements dropped, repeated or swapped) in a
        /// generated history: the checker never panics, and a repeated
        /// element is always reported. (A dropped or swapped element can
        /// leave a history that some serial order explains, so those only
        /// have to be checked without panicking.)
        #[test]
        fn corrupted_reads_are_checked_without_panicking(
            seed in 0_u64..1000,
            edits in proptest::collection::vec((0_usize..10_000, 0_u8..3), 1..6),
        ) {
            let history = generate::serializable(generate::Shape::new(200, seed));
            let mut events = history.events().to_vec();
            let reads: Vec<(usize, usize)> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == EventType::Ok)
                .flat_map(|(i, e)| {
                    e.value.iter().enumerate().filter_map(move |(j, m)| match m {
                        Mop::Read { elements: Some(list), .. } if list.len() >= 2 => Some((i, j)),
                        _ => None,
                    })
                })
                .collect();
            prop_assume!(!reads.is_empty());
            for (pick, how) in edits {
                let (i, j) = reads[pick % reads.len()];
                if let Mop::Read { elements: Some(list), .. } = &mut events[i].value[j] {
                    match how {
                        0 => {
                            list.pop();
                        }
                        1 if !list.is_empty() => list.push(list[0]),
                        _ if list.len() >= 2 => list.swap(0, 1),
                        _ => {}
                    }
                }
            }
            let repeated = events.iter().filter(|e| e.kind == EventType::Ok).any(|e| {
                e.value.iter().any(|m| match m {
                    Mop::Read { elements: Some(list), .. } => {
                        list.iter().collect::<std::collections::BTreeSet<_>>().len() != list.len()
                    }
                    _ => false,
                })
            });
            let report = check_list_append(&History::new(events).unwrap()).unwrap();
            if repeated {
                prop_assert!(report.names().contains(&"duplicate-elements".to_string()));
            }
        }
    }
}

// rw-register: the fixtures of jepsen.md, and one per anomaly the register
// inference reports without a cycle.

#[test]
fn register_g1c_circular_information_flow() {
    let h = concurrent(&[ok(&["w x 1", "r y 1"]), ok(&["w y 1", "r x 1"])]);
    assert!(h.is_register());
    assert_eq!(names(&h), ["G1c"]);
}

#[test]
fn register_g2_item_write_skew() {
    let h = concurrent(&[
        ok(&["r x nil", "r y nil", "w x 1"]),
        ok(&["r x nil", "r y nil", "w y 1"]),
    ]);
    let report = check_rw_register(&h).unwrap();
    assert_eq!(report.names(), ["G2-item"]);
    assert!(report.anomalies[0].explanation.contains("read x = nil"));
}

#[test]
fn register_g1a_aborted_read() {
    let h = concurrent(&[failed(&["w x 1"]), ok(&["r x 1"])]);
    assert_eq!(names(&h), ["G1a"]);
}

#[test]
fn register_g1b_intermediate_read() {
    let h = concurrent(&[ok(&["w x 1", "w x 2"]), ok(&["r x 1"])]);
    assert_eq!(names(&h), ["G1b"]);
}

#[test]
fn register_g_single_read_skew() {
    let h = concurrent(&[ok(&["w x 1", "w y 1"]), ok(&["r x 1", "r y nil"])]);
    assert_eq!(names(&h), ["G-single"]);
}

#[test]
fn register_lost_update() {
    let h = concurrent(&[
        ok(&["w x 0"]),
        ok(&["r x 0", "w x 1"]),
        ok(&["r x 0", "w x 2"]),
    ]);
    assert_eq!(names(&h), ["G2-item", "lost-update"]);
}

#[test]
fn register_cyclic_versions() {
    let h = concurrent(&[ok(&["r x 1", "w x 2"]), ok(&["r x 2", "w x 1"])]);
    assert_eq!(names(&h), ["G1c", "cyclic-versions"]);
}

#[test]
fn register_internal_inconsistency() {
    let h = concurrent(&[ok(&["w x 2"]), ok(&["w x 1", "r x 2"])]);
    assert!(names(&h).contains(&"internal".to_string()));
}

#[test]
fn register_stale_read_is_a_realtime_cycle_only() {
    let h = sequential(&[ok(&["r x nil", "w x 1"]), ok(&["r x nil"])]);
    assert_eq!(names(&h), ["G-single-realtime"]);
}

#[test]
fn register_serial_history_is_clean() {
    let h = sequential(&[
        ok(&["r x nil", "w x 1"]),
        ok(&["r x 1", "w x 2", "r y nil"]),
        ok(&["r x 2", "w y 3"]),
        ok(&["r y 3", "r x 2"]),
    ]);
    assert!(names(&h).is_empty());
}

#[test]
fn register_history_round_trips_through_json() {
    let h = sequential(&[
        ok(&["r x nil", "w x 1"]),
        failed(&["w y 2"]),
        ok(&["r x 1"]),
    ]);
    let text = write_json_lines(&h);
    assert!(text.contains(r#"["w","x",1]"#), "{text}");
    let back = read_json(&text).unwrap();
    assert_eq!(back, h);
    // A nil read in an invocation of a register history is a register read.
    let first = &back.events()[0].value[0];
    assert_eq!(
        *first,
        Mop::ReadRegister {
            key: "x".into(),
            value: None
        }
    );
}

#[test]
fn register_histories_reject_duplicates_and_mixing() {
    let dup = concurrent(&[ok(&["w x 1"]), ok(&["w x 1"])]);
    assert_eq!(
        check(&dup).unwrap_err(),
        HistoryError::DuplicateWrite {
            key: "x".into(),
            value: 1
        }
    );
    let mixed = r#"{"type":"invoke","process":0,"value":[["w","x",1],["append","y",2]]}"#;
    assert!(matches!(read_json(mixed), Err(HistoryError::MixedKinds)));
}
