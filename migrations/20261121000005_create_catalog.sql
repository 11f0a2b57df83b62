-- Create the catalog: generation models and credit packages, readable by everyone, with list_models and list_packages.

create table public.models (
  id text primary key,
  name text not null,
  provider text not null,
  description text,
  cost_per_generation integer not null default 0,
  cost_per_minute integer not null default 0,
  min_minutes integer not null default 1,
  max_minutes integer not null default 10,
  available boolean not null default true,
  featured boolean not null default false,
  sort_order integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint models_id_format_check check (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  constraint models_name_length_check check (char_length(name) between 1 and 100),
  constraint models_provider_length_check check (char_length(provider) between 1 and 100),
  constraint models_description_length_check check (char_length(description) <= 1000),
  constraint models_cost_nonnegative_check check (cost_per_generation >= 0 and cost_per_minute >= 0),
  constraint models_cost_positive_check check (cost_per_generation + cost_per_minute > 0),
  constraint models_minutes_range_check check (min_minutes >= 1 and max_minutes >= min_minutes and max_minutes <= 600)
);
comment on table public.models is 'Generation models and their price in credits: cost_per_generation + cost_per_minute * target_minutes.';
comment on column public.models.cost_per_generation is 'Credits charged per generation, whatever its length.';
comment on column public.models.cost_per_minute is 'Credits charged per target minute.';
comment on column public.models.available is 'Whether new generations may use this model.';
comment on column public.models.featured is 'Whether the app highlights this model.';

create table public.credit_packages (
  id text primary key,
  name text not null,
  credits integer not null,
  bonus_credits integer not null default 0,
  price_cents integer not null,
  currency text not null default 'usd',
  stripe_price_id text,
  app_store_product_id text,
  active boolean not null default true,
  sort_order integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint credit_packages_id_format_check check (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  constraint credit_packages_name_length_check check (char_length(name) between 1 and 100),
  constraint credit_packages_credits_positive_check check (credits > 0 and bonus_credits >= 0 and credits + bonus_credits <= 1000000),
  constraint credit_packages_price_positive_check check (price_cents > 0),
  constraint credit_packages_currency_format_check check (currency ~ '^[a-z]{3}$'),
  constraint credit_packages_stripe_price_id_length_check check (char_length(stripe_price_id) between 1 and 255),
  constraint credit_packages_app_store_product_id_length_check check (char_length(app_store_product_id) between 1 and 255),
  constraint credit_packages_stripe_price_id_key unique (stripe_price_id),
  constraint credit_packages_app_store_product_id_key unique (app_store_product_id)
);
comment on table public.credit_packages is 'Credit packages on sale: credits plus bonus credits for a price, with the Stripe price and App Store product that sell them.';
comment on column public.credit_packages.bonus_credits is 'Extra credits granted with the package.';
comment on column public.credit_packages.price_cents is 'Price in the currency''s minor unit.';
comment on column public.credit_packages.currency is 'ISO 4217 currency code, lower case (Stripe''s convention).';

alter table public.models enable row level security;
alter table public.credit_packages enable row level security;

revoke all on table public.models, public.credit_packages from public, anon, authenticated, service_role;
grant select on table public.models, public.credit_packages to anon, authenticated;
grant select, insert, update, delete on table public.models, public.credit_packages to service_role;

create policy "Everyone can read available models"
  on public.models for select to anon, authenticated
  using (available);
create policy "Service role can read models"
  on public.models for select to service_role using (true);
create policy "Service role can add models"
  on public.models for insert to service_role with check (true);
create policy "Service role can change models"
  on public.models for update to service_role using (true) with check (true);
create policy "Service role can remove models"
  on public.models for delete to service_role using (true);

create policy "Everyone can read active packages"
  on public.credit_packages for select to anon, authenticated
  using (active);
create policy "Service role can read packages"
  on public.credit_packages for select to service_role using (true);
create policy "Service role can add packages"
  on public.credit_packages for insert to service_role with check (true);
create policy "Service role can change packages"
  on public.credit_packages for update to service_role using (true) with check (true);
create policy "Service role can remove packages"
  on public.credit_packages for delete to service_role using (true);

-- The read RPCs run as the caller: RLS shows visitors and users only what is on offer.
create or replace function public.list_models()
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return jsonb_build_object('items', coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', m.id, 'name', m.name, 'provider', m.provider, 'description', m.description,
             'cost_per_generation', m.cost_per_generation, 'cost_per_minute', m.cost_per_minute,
             'min_minutes', m.min_minutes, 'max_minutes', m.max_minutes, 'featured', m.featured)
             order by m.sort_order, m.id)
      from public.models m
     where m.available), '[]'::jsonb));
end;
$$;
comment on function public.list_models() is 'Models available for generation: {"items": [{id, name, provider, description, cost_per_generation, cost_per_minute, min_minutes, max_minutes, featured}]}.';

create or replace function public.list_packages()
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return jsonb_build_object('items', coalesce((
    select jsonb_agg(jsonb_build_object(
             'id', p.id, 'name', p.name, 'credits', p.credits, 'bonus_credits', p.bonus_credits,
             'price_cents', p.price_cents, 'currency', p.currency,
             'stripe_price_id', p.stripe_price_id, 'app_store_product_id', p.app_store_product_id)
             order by p.sort_order, p.id)
      from public.credit_packages p
     where p.active), '[]'::jsonb));
end;
$$;
comment on function public.list_packages() is 'Credit packages on sale: {"items": [{id, name, credits, bonus_credits, price_cents, currency, stripe_price_id, app_store_product_id}]}.';

revoke all on function public.list_models(), public.list_packages() from public, anon, authenticated, service_role;
grant execute on function public.list_models(), public.list_packages() to anon, authenticated, service_role;
