-- Stripe's dispute status prevented (a dispute stopped before it became a chargeback: nothing was charged back) ranks with won and warning_closed: a closed dispute that takes nothing.

-- Before, the Worker acknowledged an event with this status and dropped it, so a dispute recorded
-- open by an earlier event (charge.dispute.created) stayed standing and the user kept losing the
-- credits although no money was reversed. Money the customer gets back through a prevention (a
-- refund) arrives as charge.refunded and counts under the refund rule.
alter table public.payment_disputes
  drop constraint payment_disputes_status_check,
  add constraint payment_disputes_status_check check (status in (
    'warning_needs_response', 'warning_under_review', 'needs_response', 'under_review', 'won', 'warning_closed', 'prevented', 'lost'));
comment on column public.payment_disputes.status is 'Highest-ranked status seen: open statuses < won, warning_closed, prevented < lost.';

-- Dispute status rank: open 1, won, warning_closed or prevented 2, lost 3 (highest seen counts).
create or replace function app.dispute_rank(p_status text)
returns integer
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return case
    when p_status in ('warning_needs_response', 'warning_under_review', 'needs_response', 'under_review') then 1
    when p_status in ('won', 'warning_closed', 'prevented') then 2
    when p_status = 'lost' then 3
  end;
end;
$$;
comment on function app.dispute_rank(text) is 'Rank of a dispute status: open 1, won/warning_closed/prevented 2, lost 3.';
revoke all on function app.dispute_rank(text) from public, anon, authenticated, service_role;
