-- task-manager's own state: workflows and their steps, plus the inbox and outbox that
-- make event handling exactly-once in effect (docs/delivery.md, "Effects exactly once").

create table workflows (
    id          text primary key,
    name        text not null,
    project     text not null,
    spec        jsonb not null,
    state       text not null,
    reason      text,                -- why queued, rejected or failed
    attempt     integer not null default 0,
    pool        text,                -- the pool this attempt was sent to, once requested
    executor_id text,
    trace_id    text,                -- 32 hex digits, the trace of the submission
    created_at  timestamptz not null default now(),
    started_at  timestamptz,
    finished_at timestamptz,
    updated_at  timestamptz not null default now()
);

create table steps (
    workflow_id text not null references workflows (id) on delete cascade,
    position    integer not null,    -- order in the workflow definition
    name        text not null,
    needs       text[] not null default '{}',
    state       text not null,
    attempt     integer not null default 0,
    exit_code   integer,
    started_at  timestamptz,
    finished_at timestamptz,
    duration_s  double precision,
    error       text,
    output_tail text,
    primary key (workflow_id, name)
);

-- One row per (consumer, event) already handled, written in the effect's transaction.
create table inbox (
    consumer     text not null,
    event_id     text not null,
    processed_at timestamptz not null default now(),
    primary key (consumer, event_id)
);

-- Events to publish, written in the transaction that decided them; id = event id =
-- Nats-Msg-Id. A row stays until published: never only marked failed.
create table outbox (
    id           text primary key,
    subject      text not null,
    headers      jsonb not null,
    body         bytea not null,
    created_at   timestamptz not null default now(),
    published_at timestamptz
);

create index outbox_unpublished on outbox (created_at) where published_at is null;
