-- Triggers: a project's rules that start a workflow when an external event matches
-- (aiop.contracts.triggers). The target, a template or a task of the project, is kept
-- as a document so that new kinds of target need no new columns.
create table triggers (
    project     text not null,
    name        text not null,
    event_type  text not null,       -- exact, or a prefix ending in '*'
    source      text,                -- null: any source
    filter      jsonb not null default '{}',
    target      jsonb not null,
    enabled     boolean not null default true,
    description text not null default '',
    created_by  text,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (project, name)
);

-- Every external event task-manager took, once per (project, source, id): a repeat of
-- it finds its row and starts nothing. runs: what each matching trigger did with it (a
-- workflow id, or why none: a target that cannot run, an archived project).
create table external_events (
    seq         bigint generated always as identity unique,  -- newest first, and the cursor
    project     text not null,
    source      text not null,
    event_id    text not null,
    type        text not null,
    subject     text,
    time        timestamptz,
    data        jsonb,
    runs        jsonb not null default '[]',
    received_at timestamptz not null default now(),
    primary key (project, source, event_id)
);

create index external_events_newest on external_events (project, seq desc);
