SERVER_TABLES = config["evaluation"]["server_tables"]
# Every table in the paper's order: those of params.yaml `tables`, Table 4 (latency benchmark + sweep), and
# Table 3 over its seeds (workflow/rules/replicates.smk).
# A dataset of your own has a test split only if it lists one (ImageSets/Segmentation/test.txt): without
# it, the tables of the test split (evaluation.server_tables) are left out.
HAS_TEST_SPLIT = OWN_DATASET is None or (Path(OWN_DATASET["root"]) / "ImageSets/Segmentation/test.txt").is_file()
ALL_TABLES = sorted([*(t for t in config["tables"] if HAS_TEST_SPLIT or t not in SERVER_TABLES), "table4", *SEEDS_TABLES],
                    key=table_order)


# One rule per table of params.yaml `tables` (named after it, as its DVC stage is).
for table, rows in config["tables"].items():

    rule:
        name:
            table
        input:
            rows=table_inputs(table, rows),
            paper=PAPER_TABLES,
        output:
            f"{REPORTS}/{table}.csv",
        params:
            table=table,  # the shell command runs after the loop: it must not read the loop variables
            rows_option="--submissions" if table in SERVER_TABLES else "--metrics",
            tracked=params_of(f"tables.{table}", "evaluation.server_tables"),
        log:
            f"{DATA}/logs/{table}.log",
        shell:
            "python stages/table.py --table {params.table} {params.rows_option} {input.rows} --paper {input.paper}"
            " --out {output} --log {log}"


rule submission_kmeans:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        bank=f"{DATA}/banks/{{model}}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/submissions/{{model}}.zip",
    wildcard_constraints:
        model=one_of(config["evaluation"]["submission_models"]["kmeans"]),
    params:
        tracked=params_of(*EVAL_PARAMS, "evaluation.test_split"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/submission_kmeans/{{model}}.log",
    shell:
        "python stages/submission.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --out {output} --log {log}"


rule submission_softmax:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/submissions/{{model}}.zip",
    wildcard_constraints:
        model=one_of(config["evaluation"]["submission_models"]["softmax"]),
    params:
        tracked=params_of(*SOFTMAX_EVAL_PARAMS, "evaluation.test_split"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/submission_softmax/{{model}}.log",
    shell:
        "python stages/submission.py --model {input.model} --dataset-root {input.dataset} --out {output} --log {log}"


rule tables_markdown:
    input:
        tables=[f"{REPORTS}/{table}.csv" for table in ALL_TABLES],
        paper=PAPER_TABLES,
    output:
        f"{REPORTS}/tables.md",
    params:
        tracked=params_of("dataset"),
    log:
        f"{DATA}/logs/tables_markdown.log",
    shell:
        "python stages/tables_markdown.py --tables {input.tables} --paper {input.paper} --out {output} --log {log}"


rule table4:
    input:
        latency="reports/benchmarks/inference_latency.csv",
        sweep=rules.fig13_knn.input,
        paper=PAPER_TABLES,
    output:
        f"{REPORTS}/table4.csv",
    params:
        tracked=params_of("table4", "inference_sweep"),
    log:
        f"{DATA}/logs/table4.log",
    shell:
        "python stages/table4.py --latency {input.latency} --sweep {input.sweep} --paper {input.paper}"
        " --out {output} --log {log}"


rule headline_metrics:
    input:
        [f"{REPORTS}/{table}.csv" for table in ALL_TABLES],
    output:
        f"{REPORTS}/headline_metrics.json",
    params:
        tracked=params_of(),
    log:
        f"{DATA}/logs/headline_metrics.log",
    shell:
        "python stages/headline_metrics.py --tables {input} --out {output} --log {log}"


# `snakemake --cores 8 reports/table3.csv`: the active dataset's table (reports/<dataset>/table3.csv, built by
# its own rule above), copied to where the command names it. Not part of `all` nor of dvc.yaml: the table's
# stage is the DAG's one description of it, and DVC's target for it is that stage (`dvc repro table3`). Git
# ignores the copies.
rule active_dataset_table:
    input:
        f"{REPORTS}/{{table}}.csv",
    output:
        "reports/{table}.csv",
    wildcard_constraints:
        table=one_of(ALL_TABLES),
    shell:
        "cp {input} {output}"
