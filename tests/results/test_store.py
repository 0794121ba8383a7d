"""Migrations, the success and leaderboard views (P_s and d* arithmetic), read-only queries."""

import duckdb
import pytest

from dofbench.errors import DofbenchError
from dofbench.results.store import MIGRATIONS, Store, migrate, schema_version


@pytest.fixture
def fake_result(synthetic_result):
    """``fake_result(d, seed, acc, status="ok", method="m", D=1000)``."""
    def make(d, seed, acc, status="ok", method="m", D=1000):
        return synthetic_result(method, d, seed, acc, status=status, D=D)

    return make


@pytest.fixture
def fill(fake_result):
    """``fill(store, rows, delta, epsilons)``: write (d, seed, acc[, status, method, D]) rows as suite 's'."""
    def write(store, rows, delta=0.25, epsilons=(0.5, 0.9)):
        results = [fake_result(d, seed, acc, *rest) for d, seed, acc, *rest in rows]
        store.write_results(results, "s")
        store.register_suite("s", "", {}, "test", [r.trial_id for r in results], "train_acc", list(epsilons),
                             delta, True)

    return write


def test_migrations_create_the_documented_surface(db):
    store = Store(db)
    with store.write() as con:
        assert schema_version(con) == len(MIGRATIONS)
        assert migrate(con) == len(MIGRATIONS)  # idempotent
        cols = {r[0] for r in con.execute("select column_name from information_schema.columns where table_name='trials'").fetchall()}
    for c in ("trial_id suite model dataset method params d total_params seed status error train_loss train_acc "
              "test_loss test_acc best_train_acc best_test_acc wall_s versions started_at finished_at spec").split():
        assert c in cols
    with store.read() as con:
        for view, need in [("success", "suite model dataset method params d metric epsilon n successes p_success"),
                           ("leaderboard", "suite model dataset method params metric epsilon delta d_star total_params d_star_fraction n_seeds")]:
            got = {r[0] for r in con.execute(f"select column_name from information_schema.columns where table_name='{view}'").fetchall()}
            assert set(need.split()) <= got, view
        assert con.execute("select count(*) from evals").fetchone()[0] == 0


def test_success_and_d_star(db, fill):
    store = Store(db)
    # d=10: 0/4 succeed at 0.5; d=20: 3/4 ; d=40: 4/4; at d=80 one seed diverged and a fifth failed
    rows = [(10, s, 0.3) for s in range(4)] + [(20, 0, 0.6), (20, 1, 0.7), (20, 2, 0.55), (20, 3, 0.2)]
    rows += [(40, s, 0.8) for s in range(4)] + [(80, 0, 0.95), (80, 1, 0.95), (80, 2, 0.99), (80, 3, None, "diverged")]
    rows += [(80, 9, None, "failed")]
    fill(store, rows)
    sc = {(d, e): (n, k, p) for d, e, n, k, p in
          store.query("select d, epsilon, n, successes, p_success from success")[1]}
    assert sc[(10, 0.5)] == (4, 0, 0.0)
    assert sc[(20, 0.5)] == (4, 3, 0.75)
    assert sc[(80, 0.9)] == (4, 3, 0.75)  # the diverged seed counts as a failure; the failed trial not at all
    row = store.query("select n_planned, n_diverged, n_failed, required, eligible from success "
                      "where d = 80 and epsilon = 0.9")[1][0]
    assert row == (5, 1, 1, 5, False)     # 4 usable of 5 planned: not eligible for d*
    lb = {e: (ds, n, f, c) for e, ds, n, f, c in
          store.query("select epsilon, d_star, n_seeds, d_star_fraction, complete from leaderboard")[1]}
    assert lb[0.5] == (20, 4, 0.02, False)  # P_s = 0.75 ≥ 1 − δ = 0.75; the grid is flagged incomplete
    assert lb[0.9] == (None, None, None, False)  # 80 would be d*, but rests on 4 of 5 seeds
    store.record_statistics("s", "grid", 0.95, seeds=5, min_seeds=4)  # relax: 4 usable seeds suffice
    assert dict(store.query("select epsilon, d_star from leaderboard")[1]) == {0.5: 20, 0.9: 80}
    fill(store, rows, delta=0.1)  # stricter δ: 0.75 no longer enough
    lb = dict(store.query("select epsilon, d_star from leaderboard")[1])
    assert lb == {0.5: 40, 0.9: None}


def test_a_diverged_trial_is_never_a_success(db, synthetic_result):
    """Its metrics (the last finite evaluation) may be far above ε: it counts as a usable seed
    that failed, in success, first_success and the leaderboard alike."""
    store = Store(db)
    rows = [synthetic_result("m", 10, s, 0.99) for s in range(3)]
    rows.append(synthetic_result("m", 10, 3, 0.99, status="diverged"))
    for r in rows:
        store.write_result(r, "s")
    store.register_suite("s", "", {}, "t", [r.trial_id for r in rows], "best_train_acc", [0.5], 0.2, True)
    assert store.query("select n, successes, n_diverged from success")[1] == [(4, 3, 1)]
    assert store.query("select d_star from leaderboard")[1] == [(None,)]  # 3/4 < 0.8
    assert store.query("select d_first from first_success where seed = 3")[1] == [(None,)]
    from dofbench.results.stats import succeeded

    assert not succeeded("diverged", 0.99, 0.5, True) and succeeded("ok", 0.99, 0.5, True)


def test_a_d_with_missing_seeds_is_not_eligible(db, synthetic_result):
    """A planned member whose trial is not stored (or failed) leaves its d short of seeds: d* moves
    to the next eligible d, the leaderboard says the grid is incomplete."""
    store = Store(db)
    stored = [synthetic_result("m", d, s, 0.9) for d in (10, 20) for s in range(3) if (d, s) != (10, 2)]
    missing = synthetic_result("m", 10, 2, 0.9)
    for r in stored:
        store.write_result(r, "s")
    ids = [r.trial_id for r in stored] + [missing.trial_id]
    specs = {r.trial_id: r.spec.model_dump(mode="json") for r in [*stored, missing]}
    store.register_suite("s", "", {}, "t", ids, "train_acc", [0.5], 0.1, True, specs=specs)
    cells = store.query("select d, n, n_planned, n_missing, eligible from success order by d")[1]
    assert cells == [(10, 2, 3, 1, False), (20, 3, 3, 0, True)]
    assert store.query("select d_star, n_seeds, complete, incomplete_dims from leaderboard")[1] == [(20, 3, False, 1)]


def test_leaderboard_ranks_methods_within_a_task(db, fake_result):
    store = Store(db)
    ids = []
    for i, (m, d, acc) in enumerate([("a", 10, 0.9), ("a", 20, 0.9), ("b", 10, 0.1), ("b", 20, 0.9), ("c", 10, 0.1), ("c", 20, 0.1)]):
        r = fake_result(d, 0, acc, method=m)
        store.write_result(r, "s")
        ids.append(r.trial_id)
    store.register_suite("s", "", {}, "t", ids, "train_acc", [0.5], 0.1, True)
    got = store.query("select method, d_star, rank from leaderboard order by rank, method")[1]
    assert got == [("a", 10, 1), ("b", 20, 2), ("c", None, None)]  # a NULL d* is not ranked


def test_a_null_d_star_is_never_ranked_first(db, fake_result):
    """Alone in its task, or only next to other NULLs, a NULL d* still gets no rank."""
    store = Store(db)
    ids = []
    for m in ("x", "y"):
        for d in (10, 20):
            r = fake_result(d, 0, 0.1, method=m)
            store.write_result(r, "s")
            ids.append(r.trial_id)
    store.register_suite("s", "", {}, "t", ids, "train_acc", [0.5], 0.1, True)
    assert store.query("select method, d_star, rank from leaderboard order by method")[1] == [
        ("x", None, None), ("y", None, None)]


def test_queries_are_read_only_and_data_survive(db, fill):
    store = Store(db)
    fill(store, [(10, 0, 0.3)])
    with pytest.raises(DofbenchError, match="only a SELECT can run here, not DROP"):
        store.query("drop table trials")
    with pytest.raises(DofbenchError, match="only a SELECT can run here, not DELETE"):
        store.query("delete from trials")
    assert store.query("select count(*) from trials")[1] == [(1,)]


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(DofbenchError, match="no results store at .*run `dofbench run SUITE` first"):
        Store(tmp_path / "none.duckdb").query("select 1")


def test_rewrite_replaces_a_trial_and_its_evals(db, fake_result):
    store = Store(db)
    store.write_result(fake_result(5, 0, 0.2), "s")
    store.write_result(fake_result(5, 0, 0.7), "s")
    assert store.query("select train_acc from trials")[1] == [(0.7,)]
    assert store.query("select count(*) from evals")[1] == [(1,)]


def test_a_group_written_at_once_is_what_one_at_a_time_writes(tmp_path, fake_result):
    """write_results: one transaction for a group; the same rows and evals as write_result one by
    one, a repeated id kept once (the later), and the writer's claims on them released."""
    group = [fake_result(5, 0, 0.2), fake_result(5, 1, 0.4), fake_result(10, 0, 0.6), fake_result(5, 0, 0.3)]
    one, many = Store(tmp_path / "one.duckdb"), Store(tmp_path / "many.duckdb")
    for r in group:
        one.write_result(r, "s")
    owner = many.claim_owner()
    assert many.claim_trials([r.trial_id for r in group[:3]], owner)[0]
    many.write_results(group, "s", release=owner)
    q = ("select trial_id, d, seed, train_acc, status, spec, versions from trials order by trial_id",
         "select * from evals order by trial_id, step, split, metric")
    for sql in q:
        assert many.query(sql)[1] == one.query(sql)[1]
    assert many.query("select count(*), min(train_acc) from trials where d = 5 and seed = 0")[1] == [(1, 0.3)]
    assert many.query("select count(*) from claims")[1] == [(0,)]
    many.write_results([], "s")  # nothing to write: no connection, nothing changed
    assert many.query("select count(*) from trials")[1] == [(3,)]


def test_an_old_store_is_not_migrated_by_a_reader_but_by_migrate(db):
    from dofbench.results import migrations

    con = duckdb.connect(str(db))
    con.execute("create table schema_migrations (version integer primary key, applied_at timestamptz)")
    migrations.MIGRATIONS[0](con)  # a store of schema 1
    con.execute("insert into schema_migrations values (1, now())")
    con.close()
    before = db.read_bytes()
    with pytest.raises(DofbenchError, match=r"older dofbench \(store schema 1.*`dofbench migrate --db"):
        Store(db).query("select count(*) from trials")
    assert db.read_bytes() == before
    assert Store(db).migrate() == len(MIGRATIONS)
    assert Store(db).query("select count(*) from trials")[1] == [(0,)]


def test_a_trial_stored_before_a_component_gained_a_parameter_stays_in_its_group(db, synthetic_result):
    """Same trial id (only non-default params are hashed), older params JSON: the suite's own
    resolution decides the group, so old and new trials form one (d, ε) cell."""
    store = Store(db)
    old = synthetic_result("m", 10, 0, 0.9, params={"lr": 0.05})  # written by a version without `projection`
    new = synthetic_result("m", 10, 1, 0.9, params={"lr": 0.05, "projection": "dense"})
    for r in (old, new):
        store.write_result(r, "s")
    today = new.spec.model_dump(mode="json")  # the suite resolves both with today's params
    specs = {old.trial_id: today, new.trial_id: today}
    store.register_suite("s", "", {}, "t", [old.trial_id, new.trial_id], "train_acc", [0.5], 0.1, True, specs=specs)
    assert store.query("select d, n, p_success, params from success")[1] == [(10, 2, 1.0, '{"lr":0.05,"projection":"dense"}')]
    assert store.query("select d_star, n_seeds from leaderboard")[1] == [(10, 2)]
    assert store.query("select params from trials where trial_id = ?", [old.trial_id])[1] == [('{"lr":0.05}',)]  # stored row unchanged


def test_a_store_of_schema_4_gets_todays_views_and_its_full_baselines_marked(db, synthetic_result):
    """Migration 5 marks the full-training baselines of stores written before methods declared
    `baseline`, and every write-open recreates the views (an older store's extra view goes)."""
    from dofbench.results import migrations

    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for version, fn in enumerate(migrations.MIGRATIONS[:4], start=1):
        fn(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
    con.close()
    store = Store(db)
    rows = [synthetic_result("sub", d, s, acc) for d, acc in ((10, 0.5), (20, 0.95)) for s in range(2)]
    rows += [synthetic_result("full", 1000, s, 1.0) for s in range(2)]
    for r in rows:
        store.write_result(r, "s")
    store.register_suite("s", "", {}, "t", [r.trial_id for r in rows], "train_acc", [0.5], 0.1, True)
    # the membership was written without baselines; emulate the old store by migrating from 4 again
    with duckdb.connect(str(db)) as raw:
        migrations.drop_views(raw)
        raw.execute("ALTER TABLE suite_trials DROP COLUMN baseline")
        raw.execute("ALTER TABLE trials DROP COLUMN traceback")
        raw.execute("DROP TABLE claims")
        raw.execute("ALTER TABLE suite_trials DROP COLUMN yardstick")
        raw.execute("ALTER TABLE trials DROP COLUMN model_label")
        raw.execute("ALTER TABLE trials DROP COLUMN dataset_label")
        raw.execute("DROP TABLE runs")
        for col in ("model", "dataset", "method", "d", "seed", "nested"):  # what 11 added
            raw.execute(f"ALTER TABLE suite_trials DROP COLUMN {col}")
        for col in ("seeds", "min_seeds"):
            raw.execute(f"ALTER TABLE suite_statistics DROP COLUMN {col}")
        for col in ("n_seeds", "complete"):
            raw.execute(f"ALTER TABLE searches DROP COLUMN {col}")
        raw.execute("DROP TABLE binomial_intervals")
        raw.execute("DROP TABLE d_star_intervals")
        raw.execute("DROP TABLE angular_dimension")                                       # what 12 added
        for col in ("model_params", "dataset_params", "params", "w2", "w2_lo", "w2_hi", "w2_sd", "status", "reason"):
            raw.execute(f"ALTER TABLE predictions DROP COLUMN {col}")
        raw.execute("DELETE FROM schema_migrations WHERE version >= 5")
        raw.execute("CREATE VIEW leaderboard_base AS SELECT 1 AS x")  # what schema 3 left behind
    fresh = Store(db)
    assert fresh.migrate() == len(migrations.MIGRATIONS)
    assert fresh.query("select d_int90, baseline from leaderboard where method = 'sub'")[1] == [(20, 1.0)]
    # migration 11 filled each member's model, d and seed from its stored trial
    assert fresh.query("select count(*) from suite_trials where d is null or seed is null or model is null")[1] == [(0,)]
    views = {r[0] for r in fresh.query("select view_name from duckdb_views() where not internal")[1]}
    assert views == {"members", "trial_values", "success", "first_success", "first_success_evidence", "leaderboard",
                     "angular_dimension_vs_theory"}


def test_a_store_of_schema_5_gets_labels_and_its_yardstick_marked(db, synthetic_result):
    """Migrations 8–10: model and dataset labels filled from each stored trial's identity, the
    yardstick of stores written before methods declared it (the built-in random subspaces), the
    runs table."""
    from dofbench.results import migrations

    store = Store(db)
    rows = [synthetic_result("random-subspace", 10, s, 0.9, model_params={"hidden": [8]}, tag="x") for s in range(2)]
    rows += [synthetic_result("other", 10, s, 0.9) for s in range(2)]
    for r in rows:
        store.write_result(r, "s")
    store.register_suite("s", "", {}, "t", [r.trial_id for r in rows], "train_acc", [0.5], 0.1, True)
    with duckdb.connect(str(db)) as raw:  # back to schema 5
        migrations.drop_views(raw)
        for col in ("model", "dataset", "method", "d", "seed", "nested"):  # what 11 added
            raw.execute(f"ALTER TABLE suite_trials DROP COLUMN {col}")
        for col in ("seeds", "min_seeds"):
            raw.execute(f"ALTER TABLE suite_statistics DROP COLUMN {col}")
        for col in ("n_seeds", "complete"):
            raw.execute(f"ALTER TABLE searches DROP COLUMN {col}")
        raw.execute("DROP TABLE binomial_intervals")
        raw.execute("DROP TABLE d_star_intervals")
        raw.execute("DROP TABLE angular_dimension")                                       # what 12 added
        for col in ("model_params", "dataset_params", "params", "w2", "w2_lo", "w2_hi", "w2_sd", "status", "reason"):
            raw.execute(f"ALTER TABLE predictions DROP COLUMN {col}")
        raw.execute("ALTER TABLE suite_trials DROP COLUMN yardstick")
        raw.execute("ALTER TABLE trials DROP COLUMN model_label")
        raw.execute("ALTER TABLE trials DROP COLUMN dataset_label")
        raw.execute("DROP TABLE runs")
        raw.execute("ALTER TABLE trials DROP COLUMN traceback")
        raw.execute("DROP TABLE claims")
        raw.execute("DELETE FROM schema_migrations WHERE version >= 6")
        assert migrations.schema_version(raw) == 5
    fresh = Store(db)
    assert fresh.migrate() == len(migrations.MIGRATIONS)
    got = fresh.query("select method, model_label, dataset_label, yardstick from leaderboard order by method")[1]
    assert got == [("other", "mlp", "data", False), ("random-subspace", "mlp[hidden=[8]]", 'data[tag="x"]', True)]
    assert fresh.query("select count(*) from runs")[1] == [(0,)]


def test_a_store_with_older_views_is_read_through_todays_views_and_not_changed(db, synthetic_result):
    store = Store(db)
    r = synthetic_result("sub", 10, 0, 0.9)
    store.write_result(r, "s")
    store.register_suite("s", "", {}, "t", [r.trial_id], "train_acc", [0.5], 0.1, True)
    with duckdb.connect(str(db)) as raw:  # what an older dofbench of the same schema left behind
        raw.execute("CREATE OR REPLACE VIEW leaderboard AS SELECT 1 AS old")
    before = db.read_bytes()
    fresh = Store(db)
    assert fresh.query("select min_d, max_d, d_star from leaderboard")[1] == [(10, 10, 10)]
    assert db.read_bytes() == before
