//! How long the consistency checker takes on a list-append history: the
//! issue's target is seconds, not minutes, for 100,000 operations.

use std::hint::black_box;

use certus::check::{check_list_append, generate};
use criterion::{Criterion, criterion_group, criterion_main};

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_list_append");
    group.sample_size(10);
    for transactions in [10_000, 100_000] {
        let history = generate::serializable(generate::Shape::new(transactions, 1));
        group.bench_function(format!("{transactions} transactions"), |b| {
            b.iter(|| {
                let report = check_list_append(black_box(&history)).expect("a valid history");
                assert!(report.anomalies.is_empty());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
