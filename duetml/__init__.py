"""duetml: human-LLM collaborative image classification for non-experts, on your own machine.

The map of the package. Layers import only downwards (cli and web -> agents -> llm / model ->
data); the core never imports cli, web, agents or llm, and the few circles are type-only.

Data: a project is a plain folder of photos plus duetml's state
    project      the project: categories, photos, every change (undoable, logged)
    importing    photos coming in: one pipeline for add, uploads and `init --from`
    journal      the undo journal, written ahead, so even a killed change is reversed
    journal_format   the shapes of its two files and their checks, damage by damage
    images       decoding photos the same safe way everywhere; thumbnails; content hashes
    names        validation of every name and path that reaches the file system
    atomic       crash-safe writes (temp file, fsync, rename)
    locks        lock files that serialise writers (two trainings, CLI beside the page)
    events       the interaction log, one JSON line per user operation
    paths        where per-user state lives (weights, ONNX exports, approvals)
    settings     the project's `duetml.toml`
    errors       the error tree: one sentence each, with its exit code and HTTP status
Model: frozen CNN features and an SVM on top
    backbones/   the feature extractors (ONNX Runtime at run time): registry, weights,
                 onnx_export (the only module importing torch), int8, session
    features     feature extraction, cached by photo content
    classifier/  the model on top of the features: plain arrays on disk, NumPy to predict
      model        TrainedModel, the interface SvmModel and RidgeModel share; storage; results
      svm, ridge   the kernel SVM (libsvm's one-vs-one scores); the ridge model of big projects
      calibration  temperature and margin weight, fitted on out-of-fold scores
      selection    `train`: cross-validation, successive halving, reuse after a small change
    training     training a project: features, fit, the model saved with what re-trains read
    prediction   the project's model file (load, stale?) and classifying photos: `predict`
    evaluation   the test set's or the cross-validation's figures: `eval`
    health       what would hurt a model, found before training (`duetml status`)
    review/      the data review: likely mislabels, copies, off-topic photos, poor photos,
                 leaks, overlapping categories (one module per detector); its fixes; its cache
    datamap      the map of all photos: cached features laid out in 2-D
    demo         the demo project, from photos that ship in the package
    export       the model as one ONNX file with a predict.py beside it (`duetml export`)
study/: running a user study (the paper's): design, sessions, questionnaires, ratings, report
agents/: the two assistants beside the user (session: both agents of one open project)
    passive, proactive     the agent that answers and the one that speaks up (and its looks)
    providers, notices     each agent's provider, readiness, consent; one-time notices
    context                what an agent sees, built from facts, history, attachments, budget
    facts, history         the facts duetml computes; the operations log and the dialogue
    attachments, sheets    photos for the model: contact sheets of categories and results
    budget, fitting        how much one request may carry, and fitting it into the window
    conversation           the saved conversation (Message) and small agent state
    proposals, prompts     changes an agent proposes; what the agents are told
    choice, status         which LLM each agent uses and approvals; `duetml llm status`
llm/: LLM providers behind one interface (base: retries, streaming, redaction)
    ollama_provider, openai_provider, none_provider, registry, config, types
    fencing, privacy       untrusted text fenced as data; where data goes; keys masked
    vision, window         whether a model sees images; its context window
cli/: the `duetml` command (thin: parse, call the core, print); app holds the shared options
    and turns a DuetmlError into its sentence and exit code
web/: `duetml serve`, a Litestar app over the same core (thin as well)
    app          create_app: the handlers, with the WebState injected (Litestar's Provide)
    routes_data, routes_model, routes_agents, routes_review    the API, by page region
    payloads     what each handler answers, declared (msgspec Structs), so the schema says it
    state, jobs, hub, thumbs   what the server keeps: trainer, change signal, thumbnail cache
    guard, errors, schema      Host/Origin checks and headers; error bodies; OpenAPI names
    server                     running it with uvicorn; static/ holds the page (ES modules)
"""

__version__ = "0.1.0"
