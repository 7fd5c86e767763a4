-- Which runner ran a step ("local", "dagger"): an executor whose Dagger engine is away
-- runs steps locally, and a reader should see which ones.
alter table steps add column runner text;
