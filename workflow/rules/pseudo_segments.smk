rule hed_contours:
    input:
        dataset=f"{DATA}/dataset",
    output:
        directory(f"{DATA}/hed"),
    params:
        tracked=params_of("threads", "hed"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/hed_contours.log",
    shell:
        "python stages/hed_contours.py --dataset-root {input.dataset} --out {output} --log {log}"


rule pseudo_segments:
    input:
        contours=f"{DATA}/hed",
    output:
        directory(f"{DATA}/pseudo_segments"),
    params:
        tracked=params_of("pseudo_segments"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/pseudo_segments.log",
    shell:
        "python stages/pseudo_segments.py --contours {input.contours} --out {output} --log {log}"


rule pseudo_segments_quality:
    input:
        samples=config["real_samples_dir"],
    output:
        "reports/pseudo_segments_quality.csv",
    params:
        tracked=params_of("threads", "hed.batch_size", "pseudo_segments"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/pseudo_segments_quality.log",
    shell:
        "python stages/pseudo_segments_quality.py --samples {input.samples} --out {output} --log {log}"


rule fig6_pseudo_segments:
    input:
        dataset=f"{DATA}/dataset",
        contours=f"{DATA}/hed",
        segments=f"{DATA}/pseudo_segments",
        samples=config["real_samples_dir"],
    output:
        f"{REPORTS}/figures/fig6_pseudo_segments.png",
    params:
        tracked=params_of("dataset", "threads", "pseudo_segments", "evaluation.eval_split", "figure6"),
    log:
        f"{DATA}/logs/fig6_pseudo_segments.log",
    shell:
        "python stages/figure6.py --dataset-root {input.dataset} --contours {input.contours}"
        " --segments {input.segments} --samples {input.samples} --out {output} --log {log}"
