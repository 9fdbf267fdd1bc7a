-- Page Help's coverage gaps: the questions it answered with the fallback,
-- counted per project, route and question so writers know which docs to
-- add. A question that looked like it held a secret is never kept: its miss
-- counts under the empty question, as does any question past the per-route
-- cap (so the table stays bounded whoever asks).

CREATE TABLE help_misses (
    project_id      TEXT NOT NULL,  -- '' when asked without a project
    route           TEXT NOT NULL,  -- a help route id, or 'knowledge-hub'
    question        TEXT NOT NULL,  -- '' when withheld
    asked           BIGINT NOT NULL,
    first_asked_at  BIGINT NOT NULL,
    last_asked_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, route, question)
);
