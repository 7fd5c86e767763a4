-- A workflow rendered from a template records which version, and with which parameters
-- (defaults filled in); a step keeps the summary it reported ($AIOP_SUMMARY).
alter table workflows add column template text;
alter table workflows add column parameters jsonb;
alter table steps add column summary jsonb;
