-- Cron schedules and the ticks they fired (ADR 0011). A tick is fired in the transaction
-- that locks its schedule row, records it here and moves next_at past it; the primary
-- key on (schedule_id, tick) makes a second firing of the same tick impossible.

create table schedules (
    id             text primary key,  -- the workflow ids of its runs derive from it
    project        text not null,
    name           text not null,
    cron           text not null,
    timezone       text not null default 'UTC',
    template       text,              -- what it starts: "name" or "name@version", or
    task           text,              -- a task of its project (exactly one of the two)
    parameters     jsonb not null default '{}',
    policy         text not null check (policy in ('skip', 'catch_up')),
    catch_up_limit integer not null check (catch_up_limit > 0),
    enabled        boolean not null default true,
    next_at        timestamptz not null,  -- the first tick not fired yet
    created_at     timestamptz not null default now(),
    created_by     text not null,     -- the principal its runs are submitted as
    unique (project, name),
    check ((template is null) <> (task is null))
);

-- What the scheduler asks each pass: the enabled schedules due first.
create index schedules_due on schedules (next_at) where enabled;

create table schedule_ticks (
    schedule_id text not null references schedules (id) on delete cascade,
    tick        timestamptz not null,
    fired_at    timestamptz not null default now(),
    workflow_id text,                 -- null when it started nothing
    error       text,                 -- why it started nothing (a template that cannot render,
                                      -- a task gone, an archived project)
    primary key (schedule_id, tick)
);
