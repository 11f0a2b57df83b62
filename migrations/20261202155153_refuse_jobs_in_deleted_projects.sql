-- A job is never created in a deleted project: generate read its project without a lock, so a delete_project committing between that read and the job's insert left a QUEUED, held job in a deleted project (hidden from the user, not cancellable, still claimable by the pipeline).

-- The check runs at the job's insert, after generate's balance lock, and re-reads the project with
-- FOR KEY SHARE, the lock the foreign key takes anyway (so no new lock order): delete_project locks
-- the project FOR UPDATE, so either the delete committed first and the re-read, after waiting for
-- it, sees deleted_at and refuses the job (the whole generate rolls back: no hold, no job, no
-- stored answer), or this insert's lock came first and delete_project waits for the job to commit
-- and then cancels it with the project's other jobs.
create or replace function app.refuse_job_in_deleted_project()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.projects p where p.id = new.project_id and p.deleted_at is null for key share;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
  end if;
  return new;
end;
$$;
comment on function app.refuse_job_in_deleted_project() is 'Trigger: a job is not created in a project that is deleted (or being deleted: the project row is read FOR KEY SHARE, after any delete_project holding it commits).';
revoke all on function app.refuse_job_in_deleted_project() from public, anon, authenticated, service_role;
create trigger jobs_refuse_deleted_project
  before insert on public.jobs
  for each row execute function app.refuse_job_in_deleted_project();
