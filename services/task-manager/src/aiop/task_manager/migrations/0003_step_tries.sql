-- How many tries of a step have started in its attempt: a failed try that its retry
-- policy runs again counts, so a reader sees a step that is struggling.
alter table steps add column tries integer not null default 0;
