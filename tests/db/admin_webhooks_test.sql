-- GET /v1/admin/webhooks' RPC (admin_list_webhook_deliveries): keyset pages newest first, filters
-- by state, event type and user, bad input refused with the field, and who may call it (admins and
-- the service role; never ordinary users or anon).
begin;
\ir _setup.psql
select plan(14);

select tests.create_user('hook-list@example.test') as u \gset
select tests.create_user('hook-other@example.test') as o \gset
select tests.create_user('hook-admin@example.test') as a \gset
-- The team made :a an admin (auth.users.raw_app_meta_data, which app.require_admin also reads).
update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = :'a';
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_list_1', 'evt_list_1', :'u', 'starter', 499, 'usd') is not null as p1 \gset
select public.fulfill_purchase('stripe', 'pi_list_2', 'evt_list_2', :'u', 'starter', 499, 'usd') is not null as p2 \gset
select public.fulfill_purchase('stripe', 'pi_list_3', 'evt_list_3', :'u', 'starter', 499, 'usd') is not null as p3 \gset
select public.fulfill_purchase('stripe', 'pi_list_4', 'evt_list_4', :'o', 'starter', 499, 'usd') is not null as p4 \gset
select tests.clear_authentication();
-- In one transaction now() is the same for every row: spread the creation times as three commits would.
update public.webhook_outbox w set created_at = now() - make_interval(secs => 10 - n), status = case when n = 1 then 'delivered' else status end
  from (select id, row_number() over (order by payload -> 'data' -> 'purchase' ->> 'provider_payment_id') as n from public.webhook_outbox where user_id = :'u') r where r.id = w.id;

-- An admin: app_metadata.role = admin in the JWT.
set local role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'a', 'role', 'authenticated', 'app_metadata', json_build_object('role', 'admin'))::text, true);
select public.admin_list_webhook_deliveries(null, 2, null, 'purchase.granted', :'u') as page1 \gset
select is(jsonb_array_length(:'page1'::jsonb -> 'items'), 2, 'a page of 2');
select is((:'page1'::jsonb -> 'items' -> 0 -> 'payload' -> 'data' -> 'purchase' ->> 'provider_payment_id'), 'pi_list_3', 'newest first, with the payload');
select isnt(:'page1'::jsonb ->> 'next_before', null, 'a next page is named');
select public.admin_list_webhook_deliveries(:'page1'::jsonb ->> 'next_before', 2, null, 'purchase.granted', :'u') as page2 \gset
select is((:'page2'::jsonb -> 'items' -> 0 -> 'payload' -> 'data' -> 'purchase' ->> 'provider_payment_id'), 'pi_list_1', 'the second page goes on where the first stopped');
select is(:'page2'::jsonb -> 'next_before', 'null'::jsonb, 'and is the last');
select is(:'page2'::jsonb -> 'counts', '{"pending": 2, "delivered": 1, "failed": 0}'::jsonb, 'counts for the filters');
select is(jsonb_array_length(public.admin_list_webhook_deliveries(null, 50, 'pending', null, :'u') -> 'items'), 2, 'by state');
select is(public.admin_list_webhook_deliveries(null, 50, null, null, :'o') -> 'items' -> 0 ->> 'user_id', :'o', 'by user');
select is(tests.error_of('select public.admin_list_webhook_deliveries(null, 50, ''sent'')') ->> 'detail', 'status', 'an unknown state is refused');
select is(tests.error_of('select public.admin_list_webhook_deliveries(null, 50, null, ''job.started'')') ->> 'detail', 'event_type', 'an unknown event type is refused');
select is(tests.error_of(format('select public.admin_list_webhook_deliveries(%L)', 'msg_' || repeat('0', 32))) ->> 'detail', 'before', 'a cursor that names no event is refused');

select tests.authenticate_as_service_role();
select is(jsonb_array_length(public.admin_list_webhook_deliveries(null, 50, null, null, :'u') -> 'items'), 3, 'the service role may list');
select tests.authenticate_as(:'u');
select is(tests.error_of('select public.admin_list_webhook_deliveries()') ->> 'code', '42501', 'an ordinary user is refused');
select tests.authenticate_as_anon();
select is(tests.error_of('select public.admin_list_webhook_deliveries()') ->> 'code', '42501', 'anon is refused (no EXECUTE)');

select * from finish();
rollback;
