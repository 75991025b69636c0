KMEANS_MODELS = one_of(config["evaluation"]["kmeans_models"])
PSEUDO_SEGMENT_MODELS = one_of(config["evaluation"]["pseudo_segment_models"])
SOFTMAX_MODELS = one_of(config["evaluation"]["softmax_models"])


rule prototype_bank_kmeans:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        f"{DATA}/banks/{{model}}.h5",
    wildcard_constraints:
        model=KMEANS_MODELS,
    params:
        tracked=params_of(*BANK_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/prototype_bank_kmeans/{{model}}.log",
    shell:
        "python stages/build_bank.py --model {input.model} --dataset-root {input.dataset} --out {output} --log {log}"


rule prototype_bank_pseudo_segments:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
        segments=f"{DATA}/pseudo_segments",
    output:
        f"{DATA}/banks/{{model}}.h5",
    wildcard_constraints:
        model=PSEUDO_SEGMENT_MODELS,
    params:
        tracked=params_of(*BANK_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/prototype_bank_pseudo_segments/{{model}}.log",
    shell:
        "python stages/build_bank.py --model {input.model} --dataset-root {input.dataset}"
        " --features backbone --segments {input.segments} --out {output} --log {log}"


rule metrics_kmeans:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        bank=f"{DATA}/banks/{{model}}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/metrics/{{model}}.json",
    wildcard_constraints:
        model=KMEANS_MODELS,
    params:
        tracked=params_of(*EVAL_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_kmeans/{{model}}.log",
    shell:
        "python stages/evaluate.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --out {output} --log {log}"


rule metrics_pseudo_segments:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        bank=f"{DATA}/banks/{{model}}.h5",
        dataset=f"{DATA}/dataset",
        segments=f"{DATA}/pseudo_segments",
    output:
        f"{REPORTS}/metrics/{{model}}.json",
    wildcard_constraints:
        model=PSEUDO_SEGMENT_MODELS,
    params:
        tracked=params_of(*EVAL_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_pseudo_segments/{{model}}.log",
    shell:
        "python stages/evaluate.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --features backbone --segments {input.segments} --out {output} --log {log}"


rule metrics_softmax:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/metrics/{{model}}.json",
    wildcard_constraints:
        model=SOFTMAX_MODELS,
    params:
        tracked=params_of(*SOFTMAX_EVAL_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_softmax/{{model}}.log",
    shell:
        "python stages/evaluate.py --model {input.model} --dataset-root {input.dataset} --out {output} --log {log}"


rule retrieval_figure:
    input:
        model=lambda wildcards: f"{DATA}/models/{config['retrieval_figures']['models'][wildcards.figure]}/model.pt",
        bank=lambda wildcards: f"{DATA}/banks/{config['retrieval_figures']['models'][wildcards.figure]}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/figures/{{figure}}.png",
    wildcard_constraints:
        figure=one_of(config["retrieval_figures"]["models"]),
    params:
        tracked=params_of(*EVAL_PARAMS, "retrieval_figures"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/retrieval_figure/{{figure}}.log",
    shell:
        "python stages/retrieval_figure.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --out {output} --log {log}"


rule unsupervised_metrics:
    input:
        model=f"{DATA}/models/{{model}}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/metrics/unsupervised/{{model}}.json",
    wildcard_constraints:
        model=one_of(config["evaluation"]["unsupervised_protocol_models"]),
    params:
        features=lambda wildcards: config["evaluation"]["unsupervised_protocol_models"][wildcards.model],
        tracked=params_of("seed", "threads", "evaluation.bank_split", "evaluation.eval_split",
                          "evaluation.unsupervised_protocols"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/unsupervised_metrics/{{model}}.log",
    shell:
        "python stages/unsupervised_metrics.py --model {input.model} --dataset-root {input.dataset}"
        " --features {params.features} --out {output} --log {log}"


SWEEP = config["inference_sweep"]


rule inference_sweep:
    input:
        model=f"{DATA}/models/{SWEEP['model']}/model.pt",
        bank=f"{DATA}/banks/{SWEEP['model']}.h5",
        dataset=f"{DATA}/dataset",
    output:
        [f"{REPORTS}/sweeps/inference/{iterations}-{k}.json" for iterations in SWEEP["kmeans_iterations"]
         for k in SWEEP["knn_k"]],
    params:
        out_dir=f"{REPORTS}/sweeps/inference",
        tracked=params_of(*EVAL_PARAMS, "inference_sweep"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/inference_sweep.log",
    shell:
        "python stages/inference_sweep.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --out-dir {params.out_dir} --log {log}"


rule fig13_knn:
    input:
        rules.inference_sweep.output,
    output:
        curve=f"{REPORTS}/sweeps/fig13_knn.csv",
        figure=f"{REPORTS}/figures/fig13_knn.png",
    params:
        curve_axes=("knn_k", "mIoU"),  # the curve's columns DVC plots (scripts/write_dvc_yaml.py)
        tracked=params_of("inference_sweep"),
    log:
        f"{DATA}/logs/fig13_knn.log",
    shell:
        "python stages/figure13.py --metrics {input} --curve {output.curve} --out {output.figure} --log {log}"
