-- A step whose state was set when its workflow ended (its executor sent no end of its
-- own): the step's real end, should it still arrive, replaces that state.
alter table steps add column closed_by_workflow boolean not null default false;
