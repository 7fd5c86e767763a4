-- What started each run (origin), the task it is a run of, and the Idempotency-Key's
-- body digest; a step keeps the step store entry holding its result, so that a rerun
-- can take it instead of running the step again.
alter table workflows add column origin jsonb;
alter table workflows add column task text;
alter table workflows add column body_digest text;
alter table workflows add column rerun_of text;
alter table steps add column entry_key text;

-- Listing runs newest first, with a stable order (id breaks ties), in a project or all.
create index workflows_newest on workflows (created_at desc, id desc);
create index workflows_project_newest on workflows (project, created_at desc, id desc);
create index workflows_task on workflows (project, task, created_at desc) where task is not null;

-- Projects group tasks, triggers and schedules; an archived one starts nothing new.
create table projects (
    name        text primary key,
    description text not null default '',
    created_at  timestamptz not null default now(),
    created_by  text not null,
    archived_at timestamptz
);

-- A task: a named unit of work in a project, either a template with parameters or a
-- workflow of its own.
create table tasks (
    project     text not null references projects (name),
    name        text not null,
    description text not null default '',
    template    text,                -- "name" or "name@version"
    parameters  jsonb not null default '{}',
    spec        jsonb,               -- a workflow, when not a template
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (project, name),
    check ((template is null) <> (spec is null))
);

-- The project every principal starts with exists from the start, so it can hold tasks.
insert into projects (name, description, created_by)
values ('default', 'The project every installation starts with', 'aiop');
